"""The example project's own pages: they share the process with the functions."""

from __future__ import annotations

from html import escape

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.http import require_GET, require_http_methods

from examples.greeter.functions import functions


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    """What this process serves."""
    return JsonResponse({"app": "django", "functions": functions.typenames, "endpoint": "/statefun"})


@require_http_methods(["GET", "POST"])
def hello(request: HttpRequest) -> HttpResponse:
    """A CSRF-protected form: proof that CSRF still guards the site's own POSTs."""
    if request.method == "POST":
        return HttpResponse(f"Hello {request.POST.get('name', 'nobody')}, from Django.\n", content_type="text/plain")
    token = escape(get_token(request))
    return HttpResponse(
        '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" value="'
        + token
        + '"><input name="name"><button>Greet</button></form>\n'
    )
