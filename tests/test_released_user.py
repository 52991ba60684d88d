"""What Onramp leaves of a user it no longer manages (#30 point 4): the access key it made for a user it
releases is deleted; "Issue a new key" is refused, in the service, for a user it released or removed; and
a secret of a user a run removed is wiped by that run, audited."""

import pytest

from provisioning.errors import OnrampError
from provisioning.models import AuditEvent, Credential, Resource, Run
from provisioning.rotation import access_key_rotate_start
from tests.awsread import account_session
from tests.conftest import CUSTOMER_ACCOUNT, finished_run, spec_data, start_run, wait_for_run
from tests.test_desired_state import _actions, _apply, _read


def test_point_4_the_onramp_made_key_of_a_released_app_user_is_deleted_and_its_secret_wiped(worker, alice, sandbox):
    iam = account_session(sandbox.url, CUSTOMER_ACCOUNT).iam
    iam.create_user(UserName="acme-app", Path="/onramp/")  # the customer's own user, handed over in the path: adopted
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    user = Resource.objects.get(kind="iam.app_user", identity="acme-app")
    key = Resource.objects.get(kind="iam.access_key", identity="acme-app")
    assert (user.origin, key.origin) == (Resource.Origin.ADOPTED, Resource.Origin.CREATED)
    sealed = Credential.objects.get(kind=Credential.Kind.ACCESS_KEY, access_key_id=key.name)
    assert sealed.state == Credential.State.SEALED

    data = spec_data(app_name="acme-web")
    read = _read(alice, data)
    actions = _actions(read)
    assert (actions["iam.app_user:acme-app"], actions["iam.access_key:acme-app"]) == ("release", "remove")
    run = _apply(alice, data, read)

    assert run.steps.filter(key=f"remove.iam.access_key:{key.name}", state="succeeded").exists()
    assert key.name not in [k["AccessKeyId"] for k in iam.list_access_keys(UserName="acme-app")["AccessKeyMetadata"]]
    assert "acme-app" in {u["UserName"] for u in iam.list_users()["Users"]}  # the user stays, the customer's
    key.refresh_from_db()
    user.refresh_from_db()
    assert (key.state, key.removed_by_run) == (Resource.State.REMOVED, run)
    assert user.state == Resource.State.RELEASED
    sealed.refresh_from_db()
    assert sealed.state == Credential.State.EXPIRED and sealed.ciphertext == ""
    wiped = AuditEvent.objects.get(action="credential.expired", details__credential=str(sealed.pk))
    assert wiped.details["reason"] == f"run {run.short_id} deleted the access key"


@pytest.mark.django_db
@pytest.mark.parametrize("state", [Resource.State.RELEASED, Resource.State.REMOVED])
def test_point_4_issue_a_new_key_is_refused_in_the_service_for_a_user_onramp_no_longer_manages(alice, state):
    run = finished_run(alice)
    Resource.objects.create(
        customer=run.customer, kind="iam.app_user", identity="acme-app", name="acme-app", origin="adopted", state=state
    )
    with pytest.raises(OnrampError) as refused:
        access_key_rotate_start(run=run, user=alice)
    assert refused.value.code == "UserNotManaged" and "Onramp no longer manages acme-app" in str(refused.value)
    assert not Credential.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="aws.").exists()  # not one call to AWS
    assert AuditEvent.objects.get(action="credential.rotation_refused").error_code == "UserNotManaged"


def test_point_4_a_secret_of_a_user_a_change_of_team_removed_is_wiped_by_that_run_audited(worker, alice, sandbox):
    assert wait_for_run(start_run(alice)).status == Run.Status.SUCCEEDED
    password = Credential.objects.get(kind=Credential.Kind.CONSOLE_PASSWORD, user_name="lead@agency.example")
    assert password.state == Credential.State.SEALED and password.ciphertext

    data = spec_data(team=[{"email": "dev@agency.example", "role": "member", "policy": "ReadOnlyAccess"}])
    read = _read(alice, data)
    assert _actions(read)["team.member:lead@agency.example"] == "remove"
    run = _apply(alice, data, read)

    password.refresh_from_db()
    assert password.state == Credential.State.EXPIRED and password.ciphertext == ""
    wiped = AuditEvent.objects.get(action="credential.expired", details__credential=str(password.pk))
    assert wiped.details["reason"] == f"run {run.short_id} removed the user"
