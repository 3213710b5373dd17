# smsflow's container image: `smsflow` as the entrypoint, run as a non-root
# numeric user, on a small Debian runtime (docs/container.md).
#
#   podman build -t smsflow .          # or: docker build -t smsflow .
#   podman run --rm smsflow --version
#
# The two base images are build arguments so that a machine without access
# to a container registry can build from local stand-ins
# (tests/helpers/container_bases.sh makes them from Debian packages).
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# --- builder ---------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
# rdkafka builds librdkafka from source with its configure script and make
# (not cmake: the cmake-build feature is off), linking OpenSSL (feature ssl)
# and zlib dynamically and zstd statically; aws-lc-sys (rustls) needs a C
# compiler. The rust:*-bookworm image has gcc and make; these make sure of
# the rest.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential ca-certificates pkg-config libssl-dev zlib1g-dev perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Cargo.toml names the benches, so cargo wants their files; src/ includes
# the Avro schemas.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY schemas ./schemas
# CARGO_VENDOR: a directory of `cargo vendor` sources mounted into the build
# (podman build -v "$PWD/vendor:/vendor:ro" --build-arg CARGO_VENDOR=/vendor),
# for a build that must not reach crates.io itself; empty: download as usual.
ARG CARGO_VENDOR=
RUN if [ -n "$CARGO_VENDOR" ]; then \
      mkdir -p .cargo \
      && printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "%s"\n' \
           "$CARGO_VENDOR" > .cargo/config.toml; \
    fi \
 && cargo build --release --locked --bin smsflow \
 && install -D -m 0755 target/release/smsflow /out/smsflow

# --- runtime ---------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# libssl3 for librdkafka's TLS, ca-certificates for https providers and
# Kafka over TLS (rustls reads the system store too). Versions follow the
# Debian 12 point release the base image is built from.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/smsflow \
 && chown 10001:10001 /var/lib/smsflow
COPY --from=builder /out/smsflow /usr/local/bin/smsflow
# A numeric user, so that Kubernetes' runAsNonRoot can check it without
# reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/smsflow
ENTRYPOINT ["smsflow"]
CMD ["--help"]
