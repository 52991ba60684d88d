from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from provisioning.identity import oidc
from provisioning.views import auth as views_auth

admin.site.site_header = "Onramp administration"
admin.site.site_title = "Onramp admin"


class FaviconRedirect(RedirectView):
    """/favicon.ico, which browsers and tools ask for whatever the page links (the admin links none): the
    static icon, resolved per request so that the hashed name of a manifest storage is used."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


urlpatterns = [
    path("login/", views_auth.login_view, name="login"),
    path("logout/", views_auth.logout_view, name="logout"),
    path("reauth/", views_auth.reauthenticate, name="reauthenticate"),
    path("oidc/authenticate/", oidc.oidc_start, name="oidc_start"),
    path("oidc/callback/", login_not_required(oidc.OidcCallbackView.as_view()), name="oidc_callback"),
    # Before the admin's own route of the same path, which writes no audit row.
    path("admin/password_change/", admin.site.admin_view(views_auth.admin_password_change)),
    path("admin/", admin.site.urls),
    path("favicon.ico", login_not_required(FaviconRedirect.as_view()), name="favicon"),
    path("", include("provisioning.urls")),
]

handler403 = "provisioning.views.site.forbidden"
