"""The project served by the Django middleware: ``STATEFUN_ORDER`` (environment) is ``first``
(it comes before CommonMiddleware, as the docs say) or ``after-common`` (it does not)."""

from __future__ import annotations

import os

from modelsproject.settings import *  # noqa: F401,F403

_OURS = "statefun_wsgi.django.StatefunMiddleware"
_COMMON = "django.middleware.common.CommonMiddleware"
MIDDLEWARE = [_OURS, _COMMON] if os.environ.get("STATEFUN_ORDER") == "first" else [_COMMON, _OURS]
ALLOWED_HOSTS = ["localhost"]
