"""exportctl: export-control status service."""

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from inspect import iscoroutinefunction
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from service.config import load_config, normalise


@functools.lru_cache(maxsize=1024)
def _is_async(function: Callable[..., Any]) -> bool:
    return iscoroutinefunction(function)


class App(Flask):
    """Flask, remembering which of its functions are coroutines: Flask asks it of every view and
    request hook (about twenty times a request) and the answer never changes for a function."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if _is_async(getattr(func, "__func__", func)):  # a method: its function, made once
            return self.async_to_sync(func)
        return func


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app. `config` overrides the environment (tests pass a mapping)."""
    from service import api, auth, cli, compression, cors, db, errors, logs, metrics, pages, ratelimit, replay
    from service.api import rendering

    app = App(__name__)
    app.config.update(load_config())
    app.config.update(normalise(config or {}))
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is no limit
        app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    if app.config["IDEMPOTENCY_TTL"] < timedelta(hours=24):
        raise ValueError("IDEMPOTENCY_TTL must keep Idempotency-Keys for at least 24 hours")
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, unless a subclass replaced it
    app.json.sort_keys = False

    db.init_app(app)
    replay.init_app(app)  # before errors: its ProblemGuard wraps the replay too
    errors.init_app(app)
    logs.init_app(app)
    rendering.init_app(app)
    ratelimit.init_app(app)
    cors.init_app(app)
    compression.init_app(app)
    metrics.init_app(app)
    api.init_app(app)
    auth.init_app(app)
    pages.init_app(app)
    cli.init_app(app)
    return app


def close_app(app: Flask) -> None:
    """Close the app's database connections (tests and tools that build many apps call this)."""
    app.extensions["exportctl.version"].close()
    app.extensions["exportctl.feed"].close()
    app.extensions["exportctl.db"].engine.dispose()
