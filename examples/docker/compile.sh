#!/bin/sh
# Give the app and its site-packages checked hash-based pycs, then prove them fresh.
# The RUN step this project recommends; CI runs it in Docker and outside it.
#   VENV, APP_DIR as for install-app.sh; HASHPYC the binary (default: hashpyc on PATH)
set -eu
VENV=${VENV:-/opt/venv}
APP_DIR=${APP_DIR:-/app}
HASHPYC=${HASHPYC:-hashpyc}
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$HASHPYC" compile --python "$VENV/bin/python" "$APP_DIR" "$site"
"$HASHPYC" check --python "$VENV/bin/python" "$APP_DIR" "$site"
