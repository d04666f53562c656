"""``python -m statefun_wsgi``: the ``statefun-wsgi`` command."""

from .cli import main

raise SystemExit(main())
