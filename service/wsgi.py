"""What gunicorn loads: `gunicorn service.wsgi:app`."""

import gc

from service import create_app, logs

logs.configure()
app = create_app()
# Everything made so far (modules, the app, its schemas and mappers) lives as long as the process:
# moved out of the collector's sight, a full collection no longer walks it on every request's
# allocations (about 4% of a cached lookup's CPU under gunicorn).
gc.freeze()
