"""Write rate limits per API key, with the `limits` library (a moving window).

Storage comes from RATELIMIT_STORAGE_URI: `memory://` (per process, the
default) or `redis://host:6379` so several gunicorn workers share one budget.

Every limited operation advertises its budget with the IETF httpapi
ratelimit-headers fields: `RateLimit-Policy: "writes";q=120;w=60` (the fixed
policy) and `RateLimit: "writes";r=57;t=12` (what is left, and seconds until
the window frees a write), on success and on the 429 beside Retry-After.
"""

import math
import time
from dataclasses import dataclass

from flask import Flask, current_app, g
from limits import parse, storage, strategies

from service.errors import RateLimited


class WriteLimiter:
    def __init__(self, storage_uri: str, limit: str, namespace: str):
        self.limit = parse(limit)
        self.namespace = namespace  # services sharing one Redis keep apart by this
        self.strategy = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def retry_after(self, key: str) -> int | None:
        """Record one write for `key`; None if allowed, else seconds until it would be."""
        state = self.hit(key)
        return None if state.allowed else state.reset

    def hit(self, key: str) -> "Budget":
        """Record one write for `key` and say what is left of its budget."""
        allowed = self.strategy.hit(self.limit, self.namespace, key)
        stats = self.strategy.get_window_stats(self.limit, self.namespace, key)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Budget(
            allowed=allowed,
            remaining=max(0, stats.remaining),
            reset=reset if allowed else max(1, reset),
            quota=self.limit.amount,
            window=self.limit.get_expiry(),
        )


POLICY = "writes"


@dataclass(frozen=True, slots=True)
class Budget:
    allowed: bool
    remaining: int
    reset: int  # seconds until the window frees a write
    quota: int
    window: int  # seconds

    def headers(self) -> dict[str, str]:
        """The draft's structured fields (a List of one Item with Parameters)."""
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.quota};w={self.window}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset}',
        }


def init_app(app: Flask) -> None:
    app.extensions["exportctl.ratelimit"] = WriteLimiter(
        app.config["RATELIMIT_STORAGE_URI"], app.config["WRITE_RATE_LIMIT"], app.config["RATELIMIT_NAMESPACE"]
    )
    app.before_request(_forget_budget)
    app.after_request(_advertise_budget)


def _forget_budget() -> None:
    """Nothing counted yet (an app context can outlive one request in tests)."""
    g.pop("write_budget", None)


def _advertise_budget(response):
    """A counted write's response (whatever its outcome) says what is left of the budget."""
    budget: Budget | None = g.get("write_budget")
    if budget is not None:
        for name, value in budget.headers().items():
            response.headers.setdefault(name, value)
    return response


def check_write_limit(key: str) -> None:
    """Count one write for `key`; raises RateLimited (with Retry-After) when its budget is spent."""
    limiter: WriteLimiter = current_app.extensions["exportctl.ratelimit"]
    budget = limiter.hit(key)
    g.write_budget = budget
    if not budget.allowed:
        raise RateLimited(
            f"This key may make {limiter.limit} writes; retry in {budget.reset} s.",
            headers={"Retry-After": str(budget.reset), **budget.headers()},
        )
