#!/usr/bin/env bash
# Install (into .venv) and start the whole system on its embedded SQLite database:
# console on http://127.0.0.1:8000, relay on 127.0.0.1:2525, delivery and alert workers.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
  touch "$stamp"
fi
exec .venv/bin/python manage.py up "$@"
