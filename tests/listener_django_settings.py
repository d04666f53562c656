"""Settings (and URLs) of the Django project that tests/test_runtime_listener.py serves.

The functions of ``listener_app`` through ``statefun_wsgi.django.StatefunMiddleware``;
``STATEFUN_RUNTIME_LISTENERS`` is left unset, so ``STATEFUN_RUNTIME_BIND`` (set by
gunicorn.conf.py) names the runtime's listener. One view, at ``/``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]  # forged Host headers reach Django's URL resolution, and its 404
INSTALLED_APPS: list = []
MIDDLEWARE = [
    "statefun_wsgi.django.StatefunMiddleware",
    "django.middleware.common.CommonMiddleware",
]
STATEFUN_FUNCTIONS = "listener_app:functions"
ROOT_URLCONF = "listener_django_settings"
DATABASES: dict = {}
USE_TZ = True


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django: home\n", content_type="text/plain")


urlpatterns = [path("", home)]
