#!/usr/bin/env bash
# Build every stage of the Dockerfile for real and run the example image's checks in a
# container. Uses ../shared/tools/local-docker (relative to the repository) to get an
# engine and local stand-ins for the official base images when no registry is reachable;
# set DOCKER_HOST yourself to use another engine, with RUST_IMAGE and PYTHON_IMAGE.
#
#   examples/docker/ci.sh                       # every stage, hashpyc compiled in `builder`
#   examples/docker/ci.sh --prebuilt BINARY     # hashpyc:bin made from BINARY (a glibc
#                                               # build, e.g. target/release/hashpyc); the
#                                               # builder stage is not built
set -euo pipefail
prebuilt=
if [ "${1:-}" = "--prebuilt" ]; then
  prebuilt=${2:?"--prebuilt needs the path of a hashpyc binary"}
  [ -x "$prebuilt" ] || { echo "--prebuilt: $prebuilt is not an executable file" >&2; exit 2; }
  prebuilt=$(cd "$(dirname "$prebuilt")" && pwd)/$(basename "$prebuilt")
  shift 2
fi
[ $# -eq 0 ] || { echo "usage: $0 [--prebuilt BINARY]" >&2; exit 2; }
cd "$(dirname "$0")/../.."
start=$SECONDS
phase() { printf '\n== %s (%ss)\n' "$1" "$((SECONDS - start))"; }

if [ -z "${DOCKER_HOST:-}" ] && [ -x ../shared/tools/local-docker ]; then
  phase "engine and local base images"
  eval "$(../shared/tools/local-docker)"
  RUST_IMAGE=${RUST_IMAGE:-local/rust:slim}
  PYTHON_IMAGE=${PYTHON_IMAGE:-local/python:3-slim}
fi
RUST_IMAGE=${RUST_IMAGE:-rust:1.95-slim}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.14-slim}
args=(--network host --build-arg "RUST_IMAGE=$RUST_IMAGE" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")

if [ -n "$prebuilt" ]; then
  phase "image hashpyc:bin from $prebuilt (builder stage not built)"
  ctx=$(mktemp -d)
  cp "$prebuilt" "$ctx/hashpyc"
  printf 'FROM scratch\nCOPY hashpyc /hashpyc\n' >"$ctx/Dockerfile"
  docker build -t hashpyc:bin "$ctx"
  rm -rf "$ctx"
  args+=(--build-arg HASHPYC_BIN=hashpyc:bin)
else
  phase "build: builder stage"
  docker build "${args[@]}" --target builder -t hashpyc:builder .
  phase "build: bin stage"
  docker build "${args[@]}" --target bin -t hashpyc:bin .
fi
phase "build: example stage"
docker build "${args[@]}" --target example -t hashpyc-example .
phase "build: examples/docker/Dockerfile.copy-from"
docker build --network host --build-arg HASHPYC_IMAGE=hashpyc:bin --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  -f examples/docker/Dockerfile.copy-from -t hashpyc-copy-from examples/docker

phase "build: examples/docker/Dockerfile.cache twice (BuildKit cache mount)"
# RUN --mount needs BuildKit: the docker CLI's buildx plugin (.ci/get-buildx fetches
# Debian's when it is missing).
docker buildx version >/dev/null 2>&1 || .ci/get-buildx
cache_args=(--network host --progress plain --build-arg HASHPYC_IMAGE=hashpyc:bin --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"
  -f examples/docker/Dockerfile.cache -t hashpyc-cache-example examples/docker)
# A fresh cache mount, then a second build whose compile layer is rebuilt (CACHE_BUST)
# and must write every pyc from the cache the first one filled. The CACHE_BUST values are
# new on every run: an engine that kept the layers of an earlier run of this script (same
# binary, same values) would otherwise skip both compile steps.
# Only this example's own mount (id=hashpyc-example-bytecode in Dockerfile.cache) is
# emptied, by a throwaway build that mounts it (--no-cache: the step runs every time; a
# cache mount outlives --no-cache): `docker builder prune --filter type=exec.cachemount`
# would delete every cache mount of the engine, other projects' too.
empty=$(docker build --network host --no-cache --progress plain --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  -f - examples/docker 2>&1 <<'EOF'
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN --mount=type=cache,id=hashpyc-example-bytecode,target=/cache find /cache -mindepth 1 -delete
EOF
) || { echo "$empty"; echo "could not empty the example's cache mount" >&2; exit 1; }
bust="$(date +%s%N)-$$"
first=$(docker build "${cache_args[@]}" --build-arg "CACHE_BUST=$bust-first" 2>&1) || { echo "$first"; exit 1; }
second=$(docker build "${cache_args[@]}" --build-arg "CACHE_BUST=$bust-second" 2>&1) || { echo "$second"; exit 1; }
summary() { grep -o 'Compiled [0-9]* files\? for CPython [^)]*)' <<<"$1" | tail -1; }
for build in first second; do
  [ -n "$(summary "${!build}")" ] || {
    echo "${!build}"
    echo "the $build build printed no compile summary (did its compile step run?)" >&2
    exit 1
  }
done
echo "first build:  $(summary "$first")"
echo "second build: $(summary "$second")"
n=$(summary "$second" | sed -E 's/^Compiled ([0-9]+) .*/\1/')
hits=$(summary "$second" | sed -nE 's/.*\(([0-9]+) from the cache.*/\1/p')
[ -n "$n" ] && [ "$n" -gt 0 ] && [ "$hits" = "$n" ] \
  || { echo "the second build did not write every pyc from the cache mount" >&2; exit 1; }
docker run --rm --read-only hashpyc-cache-example

phase "run: checks inside the example image (read-only root, writable /tmp)"
docker run --rm --read-only --tmpfs /tmp hashpyc-example /opt/hashpyc-example/verify.sh
phase "run: the example app"
docker run --rm --read-only hashpyc-example
phase "run: the COPY --from image"
docker run --rm --read-only hashpyc-copy-from
phase "run: the README's health check in the COPY --from image (read-only root)"
docker run --rm --read-only hashpyc-copy-from hashpyc check -q /opt/venv/lib

phase "done: all images built and checked in $((SECONDS - start)) s"
