"""gunicorn settings for production (docker-compose): `gunicorn -c python:service.gunicorn_conf`."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - in a container
workers = int(os.environ.get("EXPORTCTL_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("EXPORTCTL_WEB_THREADS", "4"))
timeout = 60
accesslog = "-"
control_socket_disable = True  # one socket path per user otherwise (gunicorn 27)
