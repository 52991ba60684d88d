"""Template context shared by every page."""

from django.http import HttpRequest

from provisioning.vocabulary import Access, MediaScope, MemberRole


def vocabulary(request: HttpRequest) -> dict:
    """The spec's words, so templates compare with Access.ROLE rather than a literal "role"."""
    return {"Access": Access, "MediaScope": MediaScope, "MemberRole": MemberRole}
