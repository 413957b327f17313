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
# The image's RUN steps, with a home of their own (the image's /root) and no state
# directory set: hashpyc's state (~/.cache/hashpyc) must stay out of the image's layer.
mkdir -p "$root/home"
env -u XDG_CACHE_HOME -u HASHPYC_STATE_DIR HOME="$root/home" "$here/install-app.sh"
env -u XDG_CACHE_HOME -u HASHPYC_STATE_DIR HOME="$root/home" "$here/compile.sh"
if [ -e "$root/home/.cache/hashpyc" ]; then
  echo "error: the RUN steps wrote hashpyc's state directory into the image's layer:" >&2
  find "$root/home/.cache/hashpyc" >&2
  exit 1
fi
echo "no state directory in the image's home"
"$here/verify.sh"
