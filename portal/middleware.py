"""Requests refused before any view sees them."""

from django.http import HttpResponseBadRequest


class NulRefusedMiddleware:
    """A NUL character in the query string (a name or a value) or the path is a 400: PostgreSQL cannot compare text
    with one, so an admin list's filter, the audit page's or the sign-in callback's would otherwise fail as a 500.
    Forms refuse NUL in what is posted with their own error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in name or any("\x00" in value for value in values) for name, values in request.GET.lists()
        ):
            return HttpResponseBadRequest(
                "Bad request: the address holds a NUL character (\\x00). Remove it and try again.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
