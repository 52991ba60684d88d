"""Template filters of Onramp's pages."""

from django import template

register = template.Library()


@register.filter
def arn_short(value: str) -> str:
    """An ARN cut to what tells it apart, its resource ("arn:…:user/acme-app"); anything else as it is.
    The page shows the full value on hover and on the event's own page."""
    text = str(value or "")
    parts = text.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return text
    return f"arn:…:{parts[5]}"
