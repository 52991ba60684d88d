"""The tests' one way to wait for something the worker, a server or a process does: ask again until it is so."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
M = TypeVar("M")


def wait_until(
    condition: Callable[[], T], *, timeout: float, interval: float = 0.1, message: str | Callable[[], str]
) -> T:
    """`condition()`'s first truthy answer, asked every `interval` seconds for at most `timeout` seconds (always
    at least once); then AssertionError with `message` (a callable is asked at that moment, to say what it saw).
    The timeout bounds a hang: it is no assertion about speed, so make it generous."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


def refreshed(instance: M) -> M:
    """The model instance, read again from the database (for a condition: `refreshed(read).status`)."""
    instance.refresh_from_db()
    return instance
