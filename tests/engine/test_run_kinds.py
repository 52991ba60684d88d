"""Issue 33, points 1 and 2: every run says what kind it is (onboarding, change, repair, offboarding), in
its email's subject and counts; a removal that found nothing left to remove says "already gone". The real
worker, the sandbox, a real SMTP server on loopback."""

import pytest
from django.test import Client
from django.urls import reverse

from provisioning.engine.runs import run_create
from provisioning.models import Run, StepRun
from provisioning.offboarding import offboard_confirm
from provisioning.spec import spec_parse
from provisioning.vocabulary import OffboardMode, RunKind, run_counts_words
from tests.conftest import approved, customer_for, spec_data, start_run, wait_for_run
from tests.test_notify import _notices, _wait_for
from tests.test_notify import smtp as smtp  # the fixture
from tests.test_offboarding import _plan


def _mail(smtp, run: Run) -> tuple[str, str]:
    """The subject and the text of the email about this run."""
    _wait_for(lambda: "email" in _notices(run))
    for message in smtp.messages():
        if run.short_id in message["Subject"]:
            return message["Subject"], message.get_body(preferencelist=("plain",)).get_content()
    raise AssertionError(f"no email about run {run.short_id}")


def test_point_1_each_run_kind_has_its_subject_and_its_counts(worker, alice, smtp):
    onboarding = wait_for_run(start_run(alice))
    assert (onboarding.kind, onboarding.status) == (RunKind.ONBOARDING, Run.Status.SUCCEEDED)
    subject, body = _mail(smtp, onboarding)
    assert subject == f"[Onramp] Acme Corp: onboarding succeeded (run {onboarding.short_id})"
    made = onboarding.steps.exclude(key="preflight").count()
    assert f"steps are done ({made} created)." in body, body

    # The same spec again, from Repair: everything is there, adopted; the email says it is a repair.
    data = spec_data()
    repair = run_create(spec=spec_parse(data), customer=customer_for(data), user=alice, repair=True)
    repair = wait_for_run(repair)
    assert repair.kind == RunKind.REPAIR
    subject, body = _mail(smtp, repair)
    assert subject == f"[Onramp] Acme Corp: repair succeeded (run {repair.short_id})"
    assert "The repair you started" in body and " created" not in body.split("steps are done")[1].split("\n")[0]
    # A new spec without the team, as Change team / settings starts it: a change.
    change = wait_for_run(start_run(alice, team=[]))
    assert change.kind == RunKind.CHANGE
    assert _mail(smtp, change)[0] == f"[Onramp] Acme Corp: change succeeded (run {change.short_id})"

    read = _plan(onboarding.customer, OffboardMode.LEAVE, alice)
    offboarding = wait_for_run(approved(offboard_confirm(read=read, user=alice, delete=set(), typed={})))
    assert (offboarding.kind, offboarding.status) == (RunKind.OFFBOARDING, Run.Status.SUCCEEDED)
    subject, body = _mail(smtp, offboarding)
    assert subject == (f"[Onramp] Acme Corp: offboarding (the agency leaves) succeeded (run {offboarding.short_id})")
    done = body.split("steps are done (")[1].split(").\n")[0]
    handed = len(offboarding.summary["offboard"]["handed_over"])
    assert "created" not in done and "adopted" not in done, done
    assert f"{handed} handed over to the customer" in done, done
    assert "removed" in done  # the two team users (and the lead's console password with them)
    assert "Users removed" in body and "- lead@agency.example" in body and "- dev@agency.example" in body


@pytest.mark.parametrize(
    ("kind", "counts", "words"),
    [
        (RunKind.ONBOARDING, {"created": 9, "adopted": 2, "removed": 1}, "9 created, 2 already there and adopted"),
        (
            RunKind.CHANGE,
            {"changed": 1, "released": 1},
            "1 changed, 1 released (left in the account, no longer Onramp's)",
        ),
        (
            RunKind.OFFBOARDING,
            {"created": 3, "removed": 4, "handed_over": 6},
            "4 removed, 6 handed over to the customer",
        ),
        (RunKind.REPAIR, {}, "nothing needed doing"),
    ],
)
def test_point_1_a_kind_counts_only_what_such_a_run_does(kind, counts, words):
    assert run_counts_words(kind, counts) == words


def test_point_2_a_removal_that_found_nothing_says_already_gone(worker, alice):
    onboarding = wait_for_run(start_run(alice))
    read = _plan(onboarding.customer, OffboardMode.LEAVE, alice)
    run = wait_for_run(approved(offboard_confirm(read=read, user=alice, delete=set(), typed={})))
    assert run.status == Run.Status.SUCCEEDED
    states = dict(run.steps.filter(key__startswith="remove.").values_list("key", "state"))
    # A team user has no SSH key, no signing certificate, no MFA device: nothing to remove, and nothing adopted.
    assert states["remove.user.ssh_public_keys:dev@agency.example"] == StepRun.State.GONE, states
    assert StepRun.State.ADOPTED not in states.values(), states
    # What was there was removed: the lead's console password, then the users.
    assert states["remove.user.login_profile:lead@agency.example"] == StepRun.State.SUCCEEDED
    assert states["remove.user:dev@agency.example"] == StepRun.State.SUCCEEDED

    client = Client()
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert "Already gone" in page and 'class="badge s-gone"' in page
    assert "Adopted (already existed)" not in page


@pytest.fixture
def back_to_the_latest_migration():
    """A test that migrates back leaves the database at the latest migrations (the later tests' tables exist)."""
    yield
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_point_1_and_2_runs_recorded_before_get_their_kind_and_removals_that_found_nothing_are_gone(
    back_to_the_latest_migration, alice
):
    """Migration 0014 on rows written before it: the kinds told from the runs' order, "adopted" removals gone."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("provisioning", "0013_drift")], [("provisioning", "0014_run_kind_and_gone")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = MigrationExecutor(connection).loader.project_state(before).apps
    OldRun, OldStep = old.get_model("provisioning", "Run"), old.get_model("provisioning", "StepRun")
    customer = old.get_model("provisioning", "Customer").objects.create(
        name="Acme Corp", slug="acme", aws_account_id="111122223333", external_id="x" * 32
    )
    made = {}
    for name, offboard, status in [
        ("failed_first", "", "failed"),
        ("onboarding", "", "succeeded"),
        ("change", "", "succeeded"),
        ("offboarding", "leave", "succeeded"),
        ("after_offboarding", "", "succeeded"),
    ]:
        made[name] = OldRun.objects.create(
            customer_id=customer.pk, started_by_id=alice.pk, spec={}, status=status, offboard=offboard
        )
    OldStep.objects.create(run=made["offboarding"], key="remove.user.ssh_public_keys:x", title="t", branch="b",
                           position=0, state="adopted")  # fmt: skip
    OldStep.objects.create(run=made["onboarding"], key="iam.group", title="t", branch="b", position=0, state="adopted")
    MigrationExecutor(connection).migrate(after)

    # The models as of that migration: today's Run has columns added since (approved_by).
    NewRun = MigrationExecutor(connection).loader.project_state(after).apps.get_model("provisioning", "Run")
    kinds = {name: NewRun.objects.get(pk=run.pk).kind for name, run in made.items()}
    assert kinds == {
        "failed_first": "onboarding",
        "onboarding": "onboarding",
        "change": "change",
        "offboarding": "offboarding",
        "after_offboarding": "onboarding",
    }
    states = dict(StepRun.objects.values_list("key", "state"))
    assert states == {"remove.user.ssh_public_keys:x": "gone", "iam.group": "adopted"}
