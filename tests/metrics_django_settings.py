"""Settings (and URLs) of the Django project that tests/test_metrics_gunicorn.py serves:
``metrics_app``'s 2.x-API functions through ``statefun_wsgi.django.StatefunMiddleware``,
with metrics on (``STATEFUN_METRICS``) and answered on ``STATEFUN_METRICS_PATH``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list = []
MIDDLEWARE = [
    "statefun_wsgi.django.StatefunMiddleware",
    "django.middleware.common.CommonMiddleware",
]
STATEFUN_FUNCTIONS = "metrics_app:functions"
STATEFUN_METRICS = True
STATEFUN_METRICS_PATH = "/django-metrics"
ROOT_URLCONF = "metrics_django_settings"
DATABASES: dict = {}
USE_TZ = True


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django: home\n", content_type="text/plain")


urlpatterns = [path("", home)]
