"""The kind ecr.repository_policy (provisioning/kinds/ecr_repository_policy/): complete, compared field by field, read
from the strict sandbox (RepositoryPolicyNotFoundException is AWS's "none"), and end to end: a repository policy
added by hand is drift, and a repair deletes it."""

import json

import pytest

from provisioning.aws.accounts import account_connect
from provisioning.aws.calls import call_outcome
from provisioning.kinds import REGISTRY
from provisioning.kinds.ecr_repository_policy import aws, declaration
from provisioning.models import AuditEvent, DriftState
from provisioning.steps.tables import kinds_incomplete, tables
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, customer_for, spec_data
from tests.test_drift import REGION, _check, _onboarded, _repair, _words

KEY = "ecr.repository_policy"
# Another account allowed to pull: what a person might add by hand.
PULL_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "PullFromOtherAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        }
    ],
}


def test_the_kind_is_complete():
    assert REGISTRY.kind_of(KEY) is declaration.KIND
    assert [problem for problem in kinds_incomplete(REGISTRY, tables()) if problem.startswith(KEY)] == []


def test_the_compare_wants_no_policy_and_reports_one_found():
    params = {"repository": "acme-app"}
    assert declaration.compare(params, {"policy": None}, None) == []
    (difference,) = declaration.compare(params, {"policy": PULL_POLICY}, None)
    assert (difference.field, difference.expected, difference.repairable) == ("repository policy", "none", True)
    assert difference.actual.startswith("1 statement(s), made by hand: ")
    assert "444455556666" in difference.actual


def test_no_policy_is_an_expected_answer_and_deleting_one_is_not():
    assert call_outcome("GetRepositoryPolicy", "RepositoryPolicyNotFoundException") == "expected"
    assert call_outcome("DeleteRepositoryPolicy", "RepositoryPolicyNotFoundException") == "error"


def test_the_read_says_none_for_no_policy_and_no_repository_and_reads_one_set(db, aws_sandbox_account):
    account, ecr = aws_sandbox_account
    assert aws.read(account, {"repository": "acme-app"}) is None  # no repository: nothing to read
    ecr.create_repository(repositoryName="acme-app")
    assert aws.read(account, {"repository": "acme-app"}) == {"policy": None}  # RepositoryPolicyNotFoundException
    ecr.set_repository_policy(repositoryName="acme-app", policyText=json.dumps(PULL_POLICY))
    assert aws.read(account, {"repository": "acme-app"}) == {"policy": PULL_POLICY}


@pytest.fixture
def aws_sandbox_account(aws):
    """The customer's account as a step reaches it (the role, in the strict sandbox), and a hand's ECR client."""
    customer = customer_for(spec_data())
    account = account_connect(customer=customer, region=REGION, session_name="policy", source_identity="alice")
    return account, account_session(aws.url, CUSTOMER_ACCOUNT, REGION).ecr(REGION)


def test_a_policy_added_by_hand_is_drift_and_repair_deletes_it(worker, alice, sandbox):
    customer = _onboarded(alice).customer
    assert _check(customer).state == DriftState.State.IN_SYNC  # no policy: as the spec wants
    # AWS's "none" is the answer expected, audited as such (not as an error).
    read = AuditEvent.objects.filter(action="aws.ecr.GetRepositoryPolicy", customer=customer)
    assert set(read.values_list("outcome", "error_code")) == {("expected", "RepositoryPolicyNotFoundException")}
    ecr = account_session(sandbox.url, CUSTOMER_ACCOUNT, REGION).ecr(REGION)
    ecr.set_repository_policy(repositoryName="acme-app", policyText=json.dumps(PULL_POLICY))

    state = _check(customer)
    assert state.state == DriftState.State.DRIFTED
    assert [d["key"] for d in state.differences] == [KEY], _words(state)
    assert "repository policy: expected none, found 1 statement(s), made by hand" in _words(state)[0]

    corrections, run = _repair(alice, customer)
    assert [item["key"] for item in corrections] == [KEY]
    assert [s.key for s in run.steps.all()] == ["preflight", KEY]
    assert run.steps.get(key=KEY).outputs == {"repository": "acme-app", "policy": "none"}
    with pytest.raises(ecr.exceptions.RepositoryPolicyNotFoundException):
        ecr.get_repository_policy(repositoryName="acme-app")
    assert _check(customer).state == DriftState.State.IN_SYNC
