#!/bin/sh
# What the example image must show (CI runs this inside the container, started with
# --read-only and a writable /tmp, and outside Docker against a venv):
#   1. every pyc of the app and its dependencies is fresh;
#   2. Python imports them with --check-hash-based-pycs always, from the pycs as they
#      are (on a read-only file system nothing could be rewritten anyway);
#   3. the incident: a rule module rewritten several times within one second, in a
#      writable directory, is always served current.
set -eu
VENV=${VENV:-/opt/venv}
APP_DIR=${APP_DIR:-/app}
HASHPYC=${HASHPYC:-hashpyc}
WORK=${WORK:-/tmp}
py="$VENV/bin/python"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

echo "1. hashpyc check over the app and site-packages"
"$HASHPYC" check --python "$py" "$APP_DIR" "$site"

echo "2. imports with --check-hash-based-pycs always"
log="$WORK/imports.log"
(cd "$APP_DIR" && env -u PYTHONDONTWRITEBYTECODE "$py" --check-hash-based-pycs always -v -c \
  'import hello, attrs, click; print(hello.Greeting("docker").render())' \
  2>"$log")
for module in hello/__init__ attrs/__init__ click/core; do
  if ! grep -q "code object from '.*${module%/*}/__pycache__/${module#*/}\.cpython-3[0-9]*\.pyc'" "$log"; then
    echo "error: $module was not loaded from its pyc" >&2
    grep "$module" "$log" >&2 || true
    exit 1
  fi
done
echo "   the app and its dependencies were loaded from their pycs"

echo "3. the incident: a rule rewritten several times within one second"
rules="$WORK/rules"
rm -rf "$rules"; mkdir -p "$rules"
echo "threshold = 10" > "$rules/rule.py"
"$HASHPYC" compile -q --python "$py" "$rules"
seen=""
i=10
while [ $i -lt 25 ]; do
  echo "threshold = $i" > "$rules/rule.py"
  got=$(cd "$rules" && env -u PYTHONDONTWRITEBYTECODE "$py" -c 'import rule; print(rule.threshold)')
  [ "$got" = "$i" ] || { echo "error: wrote $i, Python ran $got" >&2; exit 1; }
  seen="$seen $got"
  i=$((i + 1))
done
echo "   every value current:$seen"
