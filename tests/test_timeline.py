"""The run page's timeline: a bar per step on one time axis, by branch, waiting apart from working."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from provisioning.models import StepRun
from provisioning.registry import BRANCHES
from provisioning.timeline import timeline_build
from tests.staged import WAIT, WORK, staged_run


def _step(key: str, branch: str, position: int, state: str, **times) -> StepRun:
    return StepRun(key=key, title=key.title(), branch=branch, position=position, state=state, **times)


T0 = timezone.now().replace(microsecond=0)


def ms(n: int):
    return T0 + timedelta(milliseconds=n)


def test_the_axis_spans_every_step_and_each_bar_sits_where_its_time_was():
    steps = [
        _step("preflight", "preflight", 0, "succeeded", ready_at=ms(0), started_at=ms(100), finished_at=ms(200)),
        _step("iam.group", "iam", 1, "succeeded", ready_at=ms(200), started_at=ms(300), finished_at=ms(1000)),
        _step("s3.bucket", "s3", 2, "failed", ready_at=ms(200), started_at=ms(200), finished_at=ms(600)),
    ]
    timeline = timeline_build(steps=steps, now=ms(5000), branch_names=BRANCHES)
    assert timeline.total_ms == 1000
    rows = {row.key: row for branch in timeline.branches for row in branch.rows}
    assert (rows["preflight"].wait.x, rows["preflight"].wait.width) == ("0.00", "10.00")
    assert (rows["preflight"].work.x, rows["preflight"].work.width) == ("10.00", "10.00")
    assert (rows["iam.group"].wait.x, rows["iam.group"].wait.width, rows["iam.group"].wait.ms) == (
        "20.00",
        "10.00",
        100,
    )
    assert (rows["iam.group"].work.x, rows["iam.group"].work.width) == ("30.00", "70.00")
    assert rows["s3.bucket"].wait is None and rows["s3.bucket"].work.ms == 400  # taken at once
    assert rows["s3.bucket"].summary == "Failed, worked 400 ms"
    assert [t.label for t in timeline.ticks] == ["0", "200 ms", "400 ms", "600 ms", "800 ms", "1.0 s"]


def test_waiting_is_drawn_only_where_it_is_known_and_running_steps_reach_now():
    steps = [
        _step("preflight", "preflight", 0, "succeeded", started_at=ms(0), finished_at=ms(100)),  # no ready_at
        _step("iam.group", "iam", 1, "running", ready_at=ms(100), started_at=ms(150)),
        _step("iam.app_user", "iam", 2, "pending"),  # not ready yet
        _step("s3.bucket", "s3", 3, "pending", ready_at=ms(100)),  # ready, no free worker yet
    ]
    timeline = timeline_build(steps=steps, now=ms(400), branch_names=BRANCHES)
    rows = {row.key: row for branch in timeline.branches for row in branch.rows}
    assert rows["preflight"].wait is None and rows["preflight"].work.ms == 100
    assert rows["iam.group"].work.ms == 250  # still working: up to now
    assert rows["iam.app_user"].wait is None and rows["iam.app_user"].work is None
    assert rows["iam.app_user"].summary == "Pending, never started"
    assert rows["s3.bucket"].wait.ms == 300 and rows["s3.bucket"].work is None  # waiting until now
    assert timeline.total_ms == 400


def test_no_timeline_before_any_step_started_and_branches_keep_the_plan_order():
    pending = [_step("preflight", "preflight", 0, "pending"), _step("iam.group", "iam", 1, "pending")]
    assert timeline_build(steps=pending, now=T0, branch_names=BRANCHES) is None
    steps = [
        _step("s3.bucket", "s3", 3, "succeeded", started_at=ms(10), finished_at=ms(20)),
        _step("preflight", "preflight", 0, "succeeded", started_at=ms(0), finished_at=ms(10)),
        _step("iam.app_user", "iam", 2, "succeeded", started_at=ms(20), finished_at=ms(30)),
        _step("iam.group", "iam", 1, "succeeded", started_at=ms(10), finished_at=ms(20)),
    ]
    timeline = timeline_build(steps=steps, now=ms(30), branch_names=BRANCHES)
    assert [b.name for b in timeline.branches] == ["Preflight", "App user and access", "S3 bucket"]
    assert [r.key for b in timeline.branches for r in b.rows] == ["preflight", "iam.group", "iam.app_user", "s3.bucket"]


def _timeline_rows(html: str) -> list[tuple[str, str]]:
    section = html[html.index('id="timeline"') :]
    return re.findall(r'<div class="tl-label s-(\w+)" data-step="([^"]+)"', section)


@pytest.mark.django_db
def test_the_run_page_shows_the_timeline_by_branch_in_plan_order_with_the_failed_step(client, alice):
    run = staged_run(
        alice,
        status="failed",
        states={"s3.bucket": "failed", "s3.public_access_block": "skipped", "s3.cors": "skipped"},
        default="succeeded",
    )
    client.force_login(alice)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    shown = _timeline_rows(html)
    steps = list(run.steps.order_by("position"))
    branch_order = list(dict.fromkeys(s.branch for s in steps))
    expected = sorted(steps, key=lambda s: (branch_order.index(s.branch), s.position))
    assert [key for _, key in shown] == [s.key for s in expected]
    assert {key: state for state, key in shown}["s3.bucket"] == "failed"
    assert re.search(r'<rect class="tl-work s-failed" x="[\d.]+%" y="3" width="[\d.]+%"', html)
    branches = re.findall(r'<div class="tl-branch" data-branch="(\w+)">([^<]+)</div>', html)
    assert branches == [(key, BRANCHES[key]) for key in branch_order]
    # Every step that ran has its wait (ready_at known here) and its work, WAIT and WORK long.
    waits = re.findall(r'<rect class="tl-wait" [^>]*data-ms="(\d+)"', html)
    works = re.findall(r'<rect class="tl-work s-(?:succeeded|failed)" [^>]*data-ms="(\d+)"', html)
    ran = [s for s in steps if s.started_at]
    assert waits == [str(int(WAIT.total_seconds() * 1000))] * len(ran)
    assert works == [str(int(WORK.total_seconds() * 1000))] * len(ran)
    assert "Block Public Access (all four flags): Skipped, never started" in html


@pytest.mark.django_db
def test_a_run_page_has_no_timeline_before_its_first_step_starts(client, alice):
    run = staged_run(alice, status="pending", states={})
    client.force_login(alice)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="timeline"' not in html
