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
from limits.storage import MemoryStorage

from service.errors import RateLimited

# How often the in-process storage forgets writes that left every window.
EXPIRY_INTERVAL = 1.0


class ProcessStorage(MemoryStorage):
    """`limits`' in-process storage (memory://), which drops expired writes from the caller's
    thread at most once per EXPIRY_INTERVAL.

    Its own schedules a threading.Timer(0.01) on every hit unless one is alive, so a key
    writing less than every 10 ms started a thread per write and waited for it to start
    (about 1 ms of a write, measured). Expiry only bounds memory: the moving window reads
    each write's timestamp, so what it answers is the same. (limits is pinned: this
    replaces its private `__schedule_expiry`, which tests/test_ratelimit.py checks.)
    """

    def __init__(self, uri: str | None = None):
        self._next_expiry = 0.0
        super().__init__(uri)

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - the name limits calls
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRY_INTERVAL
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def storage_for(uri: str) -> storage.StorageTypes:
    if uri.partition("://")[0] == "memory":
        return ProcessStorage(uri)
    return storage.storage_from_string(uri)


class WriteLimiter:
    def __init__(self, storage_uri: str, limit: str, namespace: str):
        self.limit = parse(limit)
        self.namespace = namespace  # services sharing one Redis keep apart by this
        self.strategy = strategies.MovingWindowRateLimiter(storage_for(storage_uri))

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
