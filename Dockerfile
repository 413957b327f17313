# hashpyc images. Base images are build arguments so that any registry's copies can be
# used; the defaults are the official images by tag (pin them by digest in your own
# builds: digests could not be verified where this file was written).
#
#   docker build --target bin -t hashpyc:bin .      # only the binary, for COPY --from
#   docker build -t hashpyc-example .               # an app image using hashpyc
#
# The example stage's RUN step runs scripts under examples/docker/, which CI also runs
# outside Docker.
ARG RUST_IMAGE=rust:1.95-slim
ARG PYTHON_IMAGE=python:3.14-slim
# Where the example stage takes the binary from: this file's `bin` stage, or any image
# holding /hashpyc (examples/docker/ci.sh --prebuilt makes one from a binary already built).
ARG HASHPYC_BIN=bin

# Build the release binary.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin hashpyc \
 && cp target/release/hashpyc /usr/local/bin/hashpyc \
 && /usr/local/bin/hashpyc --version

# The binary alone: `COPY --from=hashpyc:bin /hashpyc /usr/local/bin/hashpyc` in images
# with glibc 2.34 or newer (its highest GLIBC_ symbol version, `objdump -T`): Debian 12+,
# Ubuntu 22.04+, RHEL 9+, python:*-slim of Debian 12 (bookworm) or later. Not
# python:*-slim-bullseye (glibc 2.31), Ubuntu 20.04 or Alpine (musl): there, install the
# manylinux2014 wheel (glibc 2.17; README, Packaging).
FROM scratch AS bin
COPY --from=builder /usr/local/bin/hashpyc /hashpyc

FROM ${HASHPYC_BIN} AS hashpyc-bin

# The pattern the README recommends: install the app and its dependencies without pip's
# timestamp pycs, give everything checked hash-based pycs, prove them fresh.
FROM ${PYTHON_IMAGE} AS example
COPY --from=hashpyc-bin /hashpyc /usr/local/bin/hashpyc
COPY examples/docker/ /opt/hashpyc-example/
# Install and compile in one RUN step, as the README recommends: the install layer never
# holds sources without their checked pycs.
RUN /opt/hashpyc-example/install-app.sh \
 && /opt/hashpyc-example/compile.sh
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
CMD ["python", "-m", "hello"]
