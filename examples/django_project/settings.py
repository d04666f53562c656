"""Settings of the example Django project (no database, no installed apps).

Functions are served two ways; pick one for a real project:

(a) ``wsgi.py`` wraps Django's WSGI app in :class:`statefun_wsgi.StatefunMiddleware`
    (``gunicorn examples.django_project.wsgi:application``): batches never enter Django.
(b) ``statefun_wsgi.django.StatefunMiddleware``, first in ``MIDDLEWARE`` below, with the
    ``STATEFUN_*`` settings (``gunicorn examples.django_project.wsgi:django_application``).
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
# The runtime's Host header (e.g. python-worker:9000) needs no entry here: /statefun is
# answered before Django looks at the host.
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")

INSTALLED_APPS: list[str] = []

MIDDLEWARE = [
    # First: it answers POST /statefun itself, so CSRF, sessions and authentication
    # never see a batch, and it reads the body with its own limit (not
    # DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB, which a batch with state can exceed).
    "statefun_wsgi.django.StatefunMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The registry to serve, as "pkg.module:attr" (or "pkg.module.attr").
STATEFUN_FUNCTIONS = "examples.greeter.functions:functions"
# Where the runtime's module.yaml endpoint points (the default); compared with request.path_info.
STATEFUN_PATH = "/statefun"
# The largest batch accepted, in bytes (the default, 32 MiB): larger ones get 413.
STATEFUN_MAX_BODY_SIZE = 32 * 1024 * 1024
# The listeners the runtime calls, the only ones where /statefun runs functions (on any other,
# it is Django's path like any other). Unset here, so STATEFUN_RUNTIME_BIND names them, which
# gunicorn.conf.py binds beside the public port and sets.
# STATEFUN_RUNTIME_LISTENERS = ["0.0.0.0:9000"]

ROOT_URLCONF = "examples.django_project.urls"
WSGI_APPLICATION = "examples.django_project.wsgi.application"

DATABASES: dict = {}
USE_TZ = True
