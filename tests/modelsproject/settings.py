"""Settings of the test project whose functions import models (see the package docstring)."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]  # the runtime's Host (127.0.0.1:PORT here) is not among them
INSTALLED_APPS = ["modelsproject"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "modelsproject.urls"
STATEFUN_FUNCTIONS = "modelsproject.functions:functions"
DATABASES: dict = {}
USE_TZ = True
