"""Template filters of Onramp's pages."""

import re

from django import template
from django.utils.html import format_html, format_html_join

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


@register.filter
def breakable_action(value: str):
    """An action name that may wrap after its dots and before its words' capitals
    (aws.iam.ListAttachedUserPolicies), never inside a word: a narrow screen keeps the whole table in view."""
    pieces = re.split(r"(?<=\.)|(?<=[a-z])(?=[A-Z])", str(value or ""))
    breaks = format_html_join("", "{}<wbr>", ((piece,) for piece in pieces[:-1]))
    return format_html("{}{}", breaks, pieces[-1])


@register.filter
def expected_words(code: str) -> str:
    """An expected answer in words: a create that found the thing there (the step adopts it), or a read that
    found none."""
    from provisioning.aws.calls import EXISTS_CODES

    return "already there → adopted" if code in EXISTS_CODES else "none there"


# A value is an identifier, a URL or a document (shown in monospace) unless it is a few plain words ("not in
# the group", "none besides Onramp's"), which the drift table shows as prose.
_PROSE = re.compile(r"^[A-Za-z][A-Za-z' ]*$")


@register.filter
def is_prose(value) -> bool:
    text = str(value or "")
    return " " in text and bool(_PROSE.match(text))


@register.filter
def breakable_value(value):
    """A value (URL, ARN, name) that may wrap after its slashes, colons, dots, commas and hyphens, rather than
    mid-word: "https://acme-app.example" breaks as "https://acme-" / "app.example", not "https://acme-a" / "pp"."""
    pieces = re.split(r"(?<=[/:.,-])(?![/:])", str(value if value is not None else ""))
    breaks = format_html_join("", "{}<wbr>", ((piece,) for piece in pieces[:-1]))
    return format_html("{}{}", breaks, pieces[-1])
