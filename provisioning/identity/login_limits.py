"""Login throttling on top of django-axes: the client's real address, and two limits.

The client's address is provisioning/addresses.py's, as in every audit row.

AXES_LOCKOUT_PARAMETERS names two sets of attempts: one username from one address, and one address
whatever the username. django-axes compares the larger count with a single limit; here each set has its
own: AXES_FAILURE_LIMIT for a username from an address (someone guessing a password), and the higher
AXES_IP_FAILURE_LIMIT for an address across usernames (password spraying), so one office behind one
address is not locked out by a few people's typos. Sign-ins through the provider are not counted here:
provisioning/identity/oidc.py throttles them per provider identity.
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.db.models import Sum


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def _sso_callback(request) -> bool:
    """The provider's callback (provisioning/identity/oidc.py marks it): throttled there, by provider identity."""
    return request is not None and hasattr(request, "onramp_flow")


class LoginLimitsHandler(AxesDatabaseHandler):
    def is_locked(self, request, credentials=None) -> bool:
        # A sign-in through the provider names no username: here it would count as the address's, and a
        # few refused ones would lock every colleague behind the same address out of the provider.
        if _sso_callback(request):
            return False
        return super().is_locked(request, credentials)

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if _sso_callback(request):
            return None
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def get_failures(self, request, credentials=None) -> int:
        """Failures as django-axes compares them with AXES_FAILURE_LIMIT: this username from this address,
        or the limit itself once the address passed AXES_IP_FAILURE_LIMIT across usernames."""
        by_user_and_ip, by_ip = (_failures(attempts) for attempts in self.get_user_attempts(request, credentials))
        if by_ip >= settings.AXES_IP_FAILURE_LIMIT:
            return max(by_user_and_ip, get_failure_limit(request, credentials))
        return by_user_and_ip

    def reset_user_attempts(self, request, credentials=None) -> int:
        """A successful login clears that username's failures from its address, not the address's count:
        a sprayer who knows one password must not reset the per-address limit with it."""
        by_user_and_ip = self.filter_user_attempts(request, credentials)[0]
        count, _ = by_user_and_ip.delete()
        return count
