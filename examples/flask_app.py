"""A Flask app that serves its own pages and the greeter functions from one process.

    gunicorn examples.flask_app:app                          # from the repository root
    gunicorn -c gunicorn.conf.py examples.flask_app:app      # the configuration we recommend

The runtime's module.yaml points at ``http://<host>:9000/statefun`` (gunicorn.conf.py's runtime listener); every other
path is Flask's, as usual.
"""

from __future__ import annotations

from flask import Flask

from examples.greeter.functions import functions
from statefun_wsgi import StatefunMiddleware

app = Flask(__name__)


@app.get("/")
def index() -> dict:
    """The app's own page: what it serves."""
    return {"app": "flask", "functions": functions.typenames, "endpoint": "/statefun"}


@app.get("/hello/<name>")
def hello(name: str) -> str:
    return f"Hello {name}, from Flask.\n"


# The one line: batches POSTed to /statefun are answered before Flask routes anything.
app.wsgi_app = StatefunMiddleware(app.wsgi_app, functions)  # type: ignore[method-assign]
