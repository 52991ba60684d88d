"""Login throttling on top of django-axes: the client's real address, and two limits.

The client's address is provisioning/addresses.py's, as in every audit row.

AXES_LOCKOUT_PARAMETERS names two sets of attempts: one username from one address, and one address
whatever the username. django-axes compares the larger count with a single limit; here each set has its
own: AXES_FAILURE_LIMIT for a username from an address (someone guessing a password), and the higher
AXES_IP_FAILURE_LIMIT for an address across usernames (password spraying), so one office behind one
address is not locked out by a few people's typos.
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.db.models import Sum


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class LoginLimitsHandler(AxesDatabaseHandler):
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
