"""gunicorn settings for production (docker-compose): `gunicorn -c python:service.gunicorn_conf`.

Every value comes from service/config.py (HOST, PORT, EXPORTCTL_WEB_WORKERS, EXPORTCTL_WEB_THREADS).
"""

from service import logs
from service.config import gunicorn_options, load_config

logs.configure()
globals().update(gunicorn_options(load_config()))
