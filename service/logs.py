"""Logging for the entry points (the CLI, gunicorn, the worker); `create_app` configures none."""

import logging


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
