#!/bin/sh
# The example image's RUN steps and checks, outside Docker: a venv in a temporary
# directory stands in for the image (CI runs this on machines without a Docker engine).
#   HASHPYC  the binary to use (default: hashpyc on PATH)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
export VENV="$root/venv" APP_DIR="$root/app" WORK="$root/work"
mkdir -p "$WORK"
"$here/install-app.sh"
"$here/compile.sh"
"$here/verify.sh"
