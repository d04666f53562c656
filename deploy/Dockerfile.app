# The greeter example app (app.py) under gunicorn with gunicorn.conf.py.
# Build context: the repository root.
#   docker build -f deploy/Dockerfile.app -t statefun-wsgi/greeter-app:latest .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, so that editing the example does not reinstall its dependencies.
COPY setup.py pyproject.toml ./
COPY statefun_wsgi/ statefun_wsgi/
# With the metrics extra (prometheus_client): STATEFUN_METRICS=1 serves them on /metrics.
RUN pip install ".[metrics]" && rm -rf build *.egg-info

# The app as a user runs it from the repository root: app.py imports examples.greeter.
COPY examples/ examples/
COPY app.py gunicorn.conf.py ./

# A home directory: newer gunicorns open their control socket under ~/.gunicorn.
RUN useradd --system --uid 10001 --create-home --home-dir /home/app --shell /usr/sbin/nologin app
USER 10001

# gunicorn.conf.py binds the app's public listener on 0.0.0.0:8000 (PORT or STATEFUN_BIND
# override it) and the runtime's on 0.0.0.0:9000 (STATEFUN_RUNTIME_BIND), the only one where
# /statefun runs functions: module.yaml's endpoint is http://greeter-app-runtime:9000/statefun.
# Publish 8000; keep 9000 reachable by the StateFun workers only.
EXPOSE 8000 9000
# gunicorn finishes accepted batches on SIGTERM, for up to graceful_timeout (60 s).
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:wsgi"]
