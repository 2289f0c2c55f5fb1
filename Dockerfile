# Image for the api and worker services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    EXPORTCTL_SEEDS=/app/seeds \
    HOST=0.0.0.0

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY service ./service
RUN pip install '.[redis]'
COPY seeds ./seeds

RUN useradd --system --uid 10001 exportctl
USER exportctl
EXPOSE 8000

CMD ["gunicorn", "--config", "python:service.gunicorn_conf", "service.wsgi:app"]
