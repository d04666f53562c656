#!/usr/bin/env bash
# Creates the virtualenv of the official Apache Flink StateFun 3.3 Python SDK
# (apache-flink-statefun==3.3.0), which needs protobuf<4 and so cannot share the project's
# environment, and prints its python. Idempotent: a no-op (well under a second) once built.
#
#   bash tests/e2e/statefun_sdk_setup.sh        # -> /.../tests/e2e/.venv-statefun33/bin/python
#
# The tests serve a function written in the official SDK's API (tests/e2e/official33_app.py)
# under gunicorn with this python; see tests/e2e/harness3/README.md.
#
# Python: $E2E_SDK_PYTHON if set, else python3.11 on PATH, else one under $PYENV_ROOT/versions
# (the SDK's default install per its docs; it runs on 3.8+).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-statefun33"
# Pinned: the newest protobuf 3.x, and a gunicorn that runs on 3.8+.
REQUIREMENTS=(apache-flink-statefun==3.3.0 protobuf==3.20.3 gunicorn==23.0.0)

log() { echo "statefun_sdk_setup: $*" >&2; }

stamp="${REQUIREMENTS[*]}"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements" 2>/dev/null)" = "$stamp" ] \
   && "$VENV/bin/python" -c 'import statefun, gunicorn' 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi

PYTHON="${E2E_SDK_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if command -v python3.11 >/dev/null 2>&1 && python3.11 -c '' 2>/dev/null; then
    PYTHON=python3.11
  else
    for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3.11; do
      [ -x "$c" ] && PYTHON="$c"
    done
  fi
fi
[ -n "$PYTHON" ] || { log "no python3.11 found (set E2E_SDK_PYTHON=/path/to/python3)"; exit 1; }

log "creating $VENV with $PYTHON: ${REQUIREMENTS[*]}"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
"$VENV/bin/python" -c 'import statefun, gunicorn'
echo "$stamp" > "$VENV/.requirements"
echo "$VENV/bin/python"
