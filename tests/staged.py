"""Runs written straight into the database at a chosen point of their life (nothing is executed), with
the timestamps a real run would have: each step ready when its dependencies were done, then a short
wait, then its work. For pages that show a run mid-way, failed, or finished, without racing a worker."""

from datetime import timedelta

from django.utils import timezone

from provisioning.models import Run, StepRun
from provisioning.plan import plan_build
from provisioning.spec import spec_parse
from tests.conftest import customer_for, spec_data

WAIT = timedelta(milliseconds=12)
WORK = timedelta(milliseconds=35)
DONE = ("succeeded", "adopted", "failed")


def staged_run(user, *, status: str, states: dict[str, str], default: str = "pending", **overrides) -> Run:
    """A run of the usual spec whose steps are in `states` (by key; others `default`). Timestamps follow
    the dependencies: a step is ready when its last dependency finished, starts WAIT later and works
    WORK long; a running step has started, a pending one whose dependencies are done is ready."""
    data = spec_data(**overrides)
    planned = plan_build(spec_parse(data))
    start = timezone.now() - timedelta(seconds=5)
    run = Run.objects.create(customer=customer_for(data), started_by=user, spec=data, status=status, started_at=start)
    finished: dict[str, object] = {}
    rows = []
    for position, step in enumerate(planned):
        state = states.get(step.key, default)
        deps_done = all(d in finished for d in step.depends_on)
        ready = max((finished[d] for d in step.depends_on), default=start) if deps_done else None
        row = StepRun(
            run=run,
            key=step.key,
            title=step.title,
            branch=step.branch,
            position=position,
            depends_on=list(step.depends_on),
            state=state,
        )
        if ready is not None and state in (*DONE, "running", "pending"):
            row.ready_at = ready
        if ready is not None and state in (*DONE, "running"):
            row.started_at = ready + WAIT
            row.attempts = 1
        if state in DONE and row.started_at:
            row.finished_at = row.started_at + WORK
            finished[step.key] = row.finished_at
        if state == "failed":
            row.error_code = "AccessDenied"
            row.error_message = "Onramp's role may not call s3:CreateBucket: add it to the role's policy."
        rows.append(row)
    StepRun.objects.bulk_create(rows)
    if status in ("succeeded", "failed"):
        run.finished_at = max(finished.values(), default=start)
        run.save(update_fields=["finished_at"])
    return run
