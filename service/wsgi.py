"""What gunicorn loads: `gunicorn service.wsgi:app`."""

from service import create_app, logs

logs.configure()
app = create_app()
