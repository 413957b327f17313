#!/bin/sh
# Install the example app and its dependencies into a virtual environment.
# Used as a RUN step of the Dockerfile's example stage, and by CI outside Docker.
#   VENV     the virtual environment to create (default /opt/venv)
#   APP_DIR  where the app goes (default /app)
set -eu
VENV=${VENV:-/opt/venv}
APP_DIR=${APP_DIR:-/app}
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$VENV"
# --no-compile: pip would write timestamp pycs that hashpyc would only replace.
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check --no-compile -q -r "$here/requirements.txt"
mkdir -p "$APP_DIR"
cp -R "$here/app/." "$APP_DIR/"
