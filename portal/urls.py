from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from provisioning import oidc, views_auth

admin.site.site_header = "Onramp administration"
admin.site.site_title = "Onramp admin"

urlpatterns = [
    path("login/", views_auth.login_view, name="login"),
    path("logout/", views_auth.logout_view, name="logout"),
    path("reauth/", views_auth.reauthenticate, name="reauthenticate"),
    path("oidc/authenticate/", oidc.oidc_start, name="oidc_start"),
    path("oidc/callback/", login_not_required(oidc.OidcCallbackView.as_view()), name="oidc_callback"),
    # Before the admin's own route of the same path, which writes no audit row.
    path("admin/password_change/", admin.site.admin_view(views_auth.admin_password_change)),
    path("admin/", admin.site.urls),
    path("", include("provisioning.urls")),
]

handler403 = "provisioning.views.forbidden"
