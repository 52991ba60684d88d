"""A run's secrets: the credential page, reveal once (after a fresh sign-in), and a new access key."""

from uuid import UUID

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from provisioning import vault
from provisioning.customers import CustomerOffboarded, customer_refuse_if_offboarded
from provisioning.errors import OnrampError
from provisioning.identity.auth import fresh_auth_required
from provisioning.identity.permissions import (
    PortalRequest,
    get_credential_for_user,
    get_run_for_user,
    portal_user_required,
)
from provisioning.models import Credential, Run
from provisioning.rotation import RotationError, access_key_rotate_finish, access_key_rotate_start


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store, max-age=0"
    response["Pragma"] = "no-cache"
    return response


@portal_user_required
@require_GET
def credential_detail(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    """GET never reveals: it offers the reveal button, or says who revealed it (410 Gone)."""
    credential = get_credential_for_user(request, credential_id)
    status = 200 if credential.state == Credential.State.SEALED else 410
    return _no_store(render(request, "provisioning/credential.html", {"credential": credential}, status=status))


@portal_user_required
@require_POST
@fresh_auth_required(back="credential_detail")
def credential_reveal_view(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    credential = get_credential_for_user(request, credential_id)
    revealed = vault.credential_reveal(credential_id=credential.pk, user=request.user)
    credential = revealed.credential
    if revealed.secret is None:
        return _no_store(
            render(request, "provisioning/credential.html", {"credential": credential, "refused": True}, status=410)
        )
    env_block = ""
    if credential.kind == Credential.Kind.ACCESS_KEY:
        env_block = (
            f"AWS_ACCESS_KEY_ID={credential.access_key_id}\n"
            f"AWS_SECRET_ACCESS_KEY={revealed.secret}\n"
            f"AWS_REGION={credential.region}\n"
            f"AWS_S3_BUCKET={credential.bucket}\n"
        )
    return _no_store(
        render(
            request,
            "provisioning/credential_revealed.html",
            {
                "credential": credential,
                "secret": revealed.secret,
                "env_block": env_block,
                # Named after the app: a browser strips the leading dot of ".env" (and saves "env.txt").
                "env_filename": f"{credential.user_name}.env",
            },
        )
    )


@portal_user_required
@require_POST
@fresh_auth_required(back="run_detail")
def rotate_start_view(request: PortalRequest, run_id: UUID) -> HttpResponse:
    run = get_run_for_user(request, run_id, action="rotate")
    if run.status != Run.Status.SUCCEEDED:
        messages.error(request, "A new key can be issued once the run has succeeded.")
        return redirect("run_detail", run_id=run.pk)
    try:
        customer_refuse_if_offboarded(customer=run.customer, user=request.user, doing="issue a new key")
        credential = access_key_rotate_start(run=run, user=request.user)
    except (OnrampError, CustomerOffboarded) as exc:
        messages.error(request, str(exc))
        return redirect("run_detail", run_id=run.pk)
    messages.success(
        request, f"New key {credential.access_key_id} issued. Reveal it, put it in the app, then remove the old key."
    )
    return redirect("credential_detail", credential_id=credential.pk)


@portal_user_required
@require_POST
def rotate_finish_view(request: PortalRequest, credential_id: UUID) -> HttpResponse:
    credential = get_credential_for_user(request, credential_id)
    try:
        access_key_rotate_finish(credential=credential, user=request.user)
        messages.success(request, f"The old key {credential.replaces_access_key_id} was deactivated and deleted.")
    except (RotationError, OnrampError) as exc:
        messages.error(request, str(exc))
    return redirect("run_detail", run_id=credential.run_id)
