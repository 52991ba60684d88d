"""`make smoke-aws`'s check (provisioning/management/commands/smoke_aws.py), run against the strict sandbox with
every rule of make test on, so that the script meant for two real accounts cannot rot; and its refusal to start
unconfirmed."""

import pytest
from django.core.management import CommandError, call_command

from provisioning.management.commands.smoke_aws import ASSUMED_RULES, CONFIRM_VARIABLE, smoke_aws_run
from tests.test_sandbox import OTHER_ACCOUNT


def test_the_smoke_check_onboards_changes_decommissions_and_leaves_nothing_on_the_strict_sandbox(
    worker, alice, dana, sandbox
):
    said: list[str] = []
    report = smoke_aws_run(
        customer_admin=sandbox.admin(OTHER_ACCOUNT),
        account_id=OTHER_ACCOUNT,
        region="us-west-2",
        user=alice,
        approver=dana,
        say=said.append,
        timeout=120,
    )
    assert report.leftovers == [], report.lines
    assert report.ok
    assert "Drift check: In sync." in said and "Left in the customer's account: nothing." in said
    assert any(line.startswith("Decommissioned, 1 name(s) typed") for line in said)
    assert set(report.observed) == set(ASSUMED_RULES)
    assert report.observed["source_identity_chain"] is False  # Onramp's own identity here is a user: nothing chained
    # The decommission deleted users, a group and a policy right after emptying them: AWS's DeleteConflict window
    # (delete_conflict_window, on in make test) was met, and waited out.
    assert report.observed["delete_conflict_window"] is True


def test_the_smoke_check_refuses_to_start_without_its_confirmation(db, alice, monkeypatch):
    monkeypatch.delenv(CONFIRM_VARIABLE, raising=False)
    with pytest.raises(CommandError) as refused:
        call_command("smoke_aws", user="alice", approver="dana")
    assert CONFIRM_VARIABLE in str(refused.value) and "disposable" in str(refused.value)
