"""What Django's debug page (development) and error reports leave out: its own list of sensitive names, plus
the settings and environment variables whose values are secrets though their names do not say so."""

import re

from django.views.debug import SafeExceptionReporterFilter

# The webhook's URL carries its token; the URLs of email, the database, Redis and Celery may carry a password.
EXTRA_HIDDEN = ("WEBHOOK", "EMAIL_URL", "DATABASE_URL", "REDIS_URL", "BROKER_URL", "RESULT_BACKEND")


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Hides the settings and request.META entries (the environment, under runserver) named like a secret."""

    hidden_settings = re.compile(
        "|".join((SafeExceptionReporterFilter.hidden_settings.pattern, *EXTRA_HIDDEN)), flags=re.IGNORECASE
    )
