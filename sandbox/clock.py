"""The strict sandbox's clock: real time, plus whatever a test advanced it by (POST /sandbox-api/clock), so a test
ages sessions and leaves a window behind without sleeping it out.

Advancing ages everything that exists at that moment; what is made afterwards starts young. So the clock keeps
each advance with the real time it happened: a time stamped by moto (a session's issue time, a key's create
date, both real) is as old as the real time since it, plus every advance made after it. Times the layer stamps
itself are read from `monotonic()`, which already counts the advances. The clock only ever moves forward, and a
reset leaves it alone: the layer's memories that outlive a reset stay in the past."""

import threading
import time
from datetime import datetime

_LOCK = threading.Lock()
_ADVANCES: list[tuple[float, float]] = []  # (time.time() when advanced, seconds advanced), oldest first


def clock_advance(*, seconds: float) -> dict:
    """Everything that exists now becomes `seconds` older; the total advanced so far."""
    if not seconds >= 0:  # also refuses NaN
        raise ValueError("the sandbox's clock only moves forward")
    with _LOCK:
        _ADVANCES.append((time.time(), float(seconds)))
        return {"advanced": sum(s for _, s in _ADVANCES)}


def monotonic() -> float:
    """time.monotonic(), plus every advance so far: for the layer's own stamps, compared with each other."""
    with _LOCK:
        return time.monotonic() + sum(s for _, s in _ADVANCES)


def age(stamp: datetime) -> float:
    """Seconds from `stamp` (a real, timezone-aware time, as moto records it) to the sandbox's now."""
    since = stamp.timestamp()
    with _LOCK:
        later = sum(s for when, s in _ADVANCES if when >= since)
    return time.time() - since + later
