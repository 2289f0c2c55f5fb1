"""The write budget's in-process storage: the moving window of `limits`, without a thread per write."""

import threading

from limits.storage import memory

from service.ratelimit import WriteLimiter


class CountedTimer(threading.Timer):
    """A Timer that counts how many were made and never runs (as one that has finished)."""

    made = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).made += 1

    def start(self):
        pass


def test_a_write_starts_no_thread(monkeypatch):
    """limits' memory storage started a Timer thread on a hit whenever none was alive: at one
    write every 10 ms or more, a thread per write (about 1 ms of it)."""
    monkeypatch.setattr(memory.threading, "Timer", CountedTimer)
    limiter = WriteLimiter("memory://", "3 per minute", "test")
    made = CountedTimer.made

    budgets = [limiter.hit("key:1") for _ in range(4)]

    assert CountedTimer.made == made
    assert [b.allowed for b in budgets] == [True, True, True, False]
    assert [b.remaining for b in budgets] == [2, 1, 0, 0]


def test_writes_that_left_the_window_are_forgotten():
    limiter = WriteLimiter("memory://", "2 per minute", "test")
    storage = limiter.strategy.storage
    limiter.hit("key:1")
    limiter.hit("key:1")
    for entry in storage.events[limiter.limit.key_for("test", "key:1")]:
        entry.atime -= 61  # as if they had been made a minute ago
        entry.expiry -= 61
    storage._next_expiry = 0.0  # expiry is due

    budget = limiter.hit("key:1")

    assert budget.allowed
    assert budget.remaining == 1
    assert len(storage.events[limiter.limit.key_for("test", "key:1")]) == 1
