#!/bin/sh
# Give the app and its site-packages checked hash-based pycs, then prove them fresh.
# The RUN step this project recommends; CI runs it in Docker and outside it.
#   VENV, APP_DIR as for install-app.sh; HASHPYC the binary (default: hashpyc on PATH)
set -eu
VENV=${VENV:-/opt/venv}
APP_DIR=${APP_DIR:-/app}
HASHPYC=${HASHPYC:-hashpyc}
# No state directory (~/.cache/hashpyc): it would be saved in the image's layer, and it
# only speeds up later runs on the same machine.
export HASHPYC_NO_STATE=1
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$HASHPYC" compile --python "$VENV/bin/python" "$APP_DIR" "$site"
"$HASHPYC" check --python "$VENV/bin/python" "$APP_DIR" "$site"
