"""WSGI entry points of the example Django project.

    gunicorn examples.django_project.wsgi:application            # (a) WSGI middleware around Django
    gunicorn examples.django_project.wsgi:django_application     # (b) Django middleware in settings

Both serve the project's views and the greeter functions on /statefun, with the
same replies. A real project needs only one of them.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")

#: (b) Django alone: "statefun_wsgi.django.StatefunMiddleware", first in
#: settings.MIDDLEWARE, answers /statefun with the STATEFUN_* settings.
django_application = get_wsgi_application()  # sets Django up: models can be imported from here on

# After the set-up: functions that import models could not be imported before it.
from examples.greeter.functions import functions  # noqa: E402
from statefun_wsgi import StatefunMiddleware  # noqa: E402

#: (a) The WSGI middleware around Django: batches are answered before Django runs,
#: every other request reaches Django untouched.
application = StatefunMiddleware(django_application, functions)
