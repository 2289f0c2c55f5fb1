"""Write rate limits per API key, with the `limits` library (a moving window).

Storage comes from RATELIMIT_STORAGE_URI: `memory://` (per process, the
default) or `redis://host:6379` so several gunicorn workers share one budget.
"""

import math
import time

from flask import Flask, current_app
from limits import parse, storage, strategies

from service.errors import RateLimited


class WriteLimiter:
    def __init__(self, storage_uri: str, limit: str, namespace: str):
        self.limit = parse(limit)
        self.namespace = namespace  # services sharing one Redis keep apart by this
        self.strategy = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def retry_after(self, key: str) -> int | None:
        """Record one write for `key`; None if allowed, else seconds until it would be."""
        if self.strategy.hit(self.limit, self.namespace, key):
            return None
        reset = self.strategy.get_window_stats(self.limit, self.namespace, key).reset_time
        return max(1, math.ceil(reset - time.time()))


def init_app(app: Flask) -> None:
    app.extensions["exportctl.ratelimit"] = WriteLimiter(
        app.config["RATELIMIT_STORAGE_URI"], app.config["WRITE_RATE_LIMIT"], app.config["RATELIMIT_NAMESPACE"]
    )


def check_write_limit(key: str) -> None:
    """Count one write for `key`; raises RateLimited (with Retry-After) when its budget is spent."""
    limiter: WriteLimiter = current_app.extensions["exportctl.ratelimit"]
    retry_after = limiter.retry_after(key)
    if retry_after is not None:
        raise RateLimited(
            f"This key may make {limiter.limit} writes; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
