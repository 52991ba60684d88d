"""The run page's timeline: a bar per step on one time axis, grouped by branch, with the time a step
waited (ready, not started) apart from the time it worked. Pure: steps and a clock in, numbers and
words out; the template draws them as SVG.

A step's wait is known only where it has `ready_at` (when its dependencies were all done); where it
is not known, only the work is drawn.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from provisioning.models import StepRun

MIN_WIDTH = 0.4  # percent of the axis: a step done within a millisecond still shows as a sliver
MAX_TICKS = 6


def duration_text(ms: int | float | None) -> str:
    """A duration for people: "—", "840 ms", "1.2 s"."""
    if ms is None:
        return "—"
    return f"{int(ms)} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@dataclass(frozen=True)
class Segment:
    x: str  # where it starts, in percent of the axis ("12.50")
    width: str  # how long, in percent of the axis
    ms: int


@dataclass(frozen=True)
class TimelineRow:
    key: str
    title: str
    state: str
    state_label: str
    wait: Segment | None
    work: Segment | None

    @property
    def summary(self) -> str:
        """What the row shows, in words (the bar's accessible name)."""
        parts = [self.state_label]
        if self.wait is not None:
            parts.append(f"waited {duration_text(self.wait.ms)}")
        if self.work is not None:
            parts.append(f"worked {duration_text(self.work.ms)}")
        elif self.wait is None:
            parts.append("never started")
        return ", ".join(parts)


@dataclass(frozen=True)
class TimelineBranch:
    key: str
    name: str
    rows: tuple[TimelineRow, ...]


@dataclass(frozen=True)
class Tick:
    x: str  # percent of the axis
    label: str

    @property
    def anchor(self) -> str:
        """Where the label sits on its tick, so the first and last labels stay inside the axis."""
        x = float(self.x)
        return "start" if x < 5 else "end" if x > 95 else "middle"


@dataclass(frozen=True)
class Timeline:
    branches: tuple[TimelineBranch, ...]
    ticks: tuple[Tick, ...]
    total_ms: int

    @property
    def total_text(self) -> str:
        return duration_text(self.total_ms)


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def _spans(step: StepRun, now: datetime) -> tuple[tuple | None, tuple | None]:
    """(wait, work) as (start, end) datetimes, each None when it did not happen or is not known."""
    work = None
    if step.started_at is not None:
        end = step.finished_at or (now if step.state == StepRun.State.RUNNING else step.started_at)
        work = (step.started_at, max(end, step.started_at))
    wait = None
    if step.ready_at is not None:
        waited = step.started_at or (now if step.state == StepRun.State.PENDING else step.finished_at)
        if waited is not None and waited > step.ready_at:  # a step taken at once did not wait
            wait = (step.ready_at, waited)
    return wait, work


def _nice_step(total_ms: float) -> float:
    """The tick spacing: 1, 2 or 5 times a power of ten, so that at most MAX_TICKS ticks fit."""
    raw = max(total_ms / (MAX_TICKS - 1), 1.0)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _percent(value: float) -> str:
    return f"{min(max(value, 0.0), 100.0):.2f}"


def timeline_build(*, steps: Iterable[StepRun], now: datetime, branch_names: dict[str, str]) -> Timeline | None:
    """The timeline of a run's steps (in plan order), or None while no step has started."""
    steps = sorted(steps, key=lambda s: s.position)
    spans = {s.key: _spans(s, now) for s in steps}
    points = [t for wait, work in spans.values() for span in (wait, work) if span for t in span]
    if not any(work for _, work in spans.values()):
        return None
    start, end = min(points), max(points)
    total = max(_ms(end, start), 1.0)

    def segment(span) -> Segment | None:
        if span is None:
            return None
        ms = _ms(span[1], span[0])
        return Segment(
            x=_percent(_ms(span[0], start) / total * 100),
            width=_percent(max(ms / total * 100, MIN_WIDTH)),
            ms=round(ms),
        )

    branches: dict[str, list[TimelineRow]] = {}
    for step in steps:
        wait, work = spans[step.key]
        row = TimelineRow(
            key=step.key,
            title=step.title,
            state=step.state,
            state_label=step.get_state_display(),
            wait=segment(wait),
            work=segment(work),
        )
        branches.setdefault(step.branch, []).append(row)
    spacing = _nice_step(total)
    ticks = tuple(
        Tick(x=_percent(n * spacing / total * 100), label=duration_text(n * spacing) if n else "0")
        for n in range(int(total // spacing) + 1)
    )
    return Timeline(
        branches=tuple(
            TimelineBranch(key=key, name=branch_names.get(key, key.capitalize()), rows=tuple(rows))
            for key, rows in branches.items()
        ),
        ticks=ticks,
        total_ms=round(total),
    )
