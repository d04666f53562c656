"""gunicorn settings we recommend for serving StateFun functions (a thin file).

    gunicorn -c gunicorn.conf.py app:wsgi

The settings and hooks live in the package, statefun_wsgi/gunicorn_conf.py, so that
whoever installed statefun-wsgi has them without this repository::

    gunicorn -c python:statefun_wsgi.gunicorn_conf app:wsgi

This file runs that module afresh each time gunicorn reads it (at start and on SIGHUP),
so the environment variables it reads are read again, as a config file's are.
"""

from __future__ import annotations

import importlib.util

# A fresh module object each time (not the one `import` caches in sys.modules).
_spec = importlib.util.find_spec("statefun_wsgi.gunicorn_conf")  # ModuleNotFoundError without statefun-wsgi
if _spec is None or _spec.loader is None:
    raise ImportError("statefun_wsgi.gunicorn_conf not found: install this repository's statefun-wsgi (pip install -e .)")
_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_settings)
globals().update({name: value for name, value in vars(_settings).items() if not name.startswith("__")})
