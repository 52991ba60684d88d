from django.urls import path

from provisioning import views, views_audit, views_customers, views_offboard

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("onboard/", views.onboard, name="onboard"),
    path("onboard/preview/", views.onboard_preview, name="onboard_preview"),
    path("onboard/preview/read-again/", views.onboard_reread, name="onboard_reread"),
    path("customers/", views_customers.customer_list, name="customer_list"),
    path("customers/<slug:slug>/", views_customers.customer_detail, name="customer_detail"),
    path("customers/<slug:slug>/change/", views_customers.customer_change, name="customer_change"),
    path("customers/<slug:slug>/offboard/", views_offboard.customer_offboard, name="customer_offboard"),
    path(
        "customers/<slug:slug>/offboard/<uuid:read_id>/",
        views_offboard.customer_offboard_plan,
        name="customer_offboard_plan",
    ),
    path("runs/<uuid:run_id>/reopen/", views_customers.run_reopen, name="run_reopen"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/live/", views.run_live, name="run_live"),
    path("runs/<uuid:run_id>/retry/", views.run_retry_view, name="run_retry"),
    path("runs/<uuid:run_id>/cancel/", views.run_cancel_view, name="run_cancel"),
    path("runs/<uuid:run_id>/new-key/", views.rotate_start_view, name="rotate_start"),
    path("credentials/<uuid:credential_id>/", views.credential_detail, name="credential_detail"),
    path("credentials/<uuid:credential_id>/reveal/", views.credential_reveal_view, name="credential_reveal"),
    path("credentials/<uuid:credential_id>/remove-old-key/", views.rotate_finish_view, name="rotate_finish"),
    path("audit/", views_audit.audit_history, name="audit_history"),
    path("audit/<int:event_id>/", views_audit.audit_event_detail, name="audit_event_detail"),
    path("audit/export.<str:fmt>", views_audit.audit_export, name="audit_export"),
]
