"""What every visitor meets: the health check, and the page of a refusal (403)."""

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.celery import app as celery_app
from provisioning.identity.oidc import oidc_enabled
from provisioning.identity.permissions import access_denied_record, is_portal_user


@login_not_required
@require_GET
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database and the broker answer, 503 naming the one that does not."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            conn.default_channel.client.ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"down: {type(exc).__name__}"
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ok else "down", **checks}, status=200 if ok else 503)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    access_denied_record(user=request.user, path=request.path)
    context: dict[str, Any] = {"message": str(exception or "")}
    if request.user.is_authenticated and not is_portal_user(request.user):
        # Signed in but in no group: say how access is granted, naming nobody (break-glass accounts included).
        context["no_group"] = True
        if oidc_enabled() and settings.OIDC_GROUPS_CLAIM:
            context["provider_groups"] = sorted(settings.OIDC_GROUP_MAP.items())
    return render(request, "403.html", context, status=403)
