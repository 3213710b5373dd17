#!/usr/bin/env bash
# Makes local stand-ins for the Dockerfile's two base images, for a machine
# that reaches Debian's package archive but no container registry (this
# project's CI: docs/container.md):
#
#   localhost/smsflow-base/debian:bookworm-slim  debootstrap --variant=minbase
#   localhost/smsflow-base/rust:bookworm         the same plus gcc, make,
#                                                pkg-config, the -dev packages
#                                                and this machine's Rust
#                                                toolchain (rustc --print sysroot)
#
# Then: podman build --build-arg RUST_IMAGE=localhost/smsflow-base/rust:bookworm \
#         --build-arg RUNTIME_IMAGE=localhost/smsflow-base/debian:bookworm-slim .
#
# Usage: container_bases.sh [podman options, e.g. --storage-driver vfs]
# Needs root, debootstrap and podman. An image that already exists is kept.
set -euo pipefail
podman=(podman "$@")
mirror="${SMSFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
runtime=localhost/smsflow-base/debian:bookworm-slim
builder=localhost/smsflow-base/rust:bookworm

have() { "${podman[@]}" image exists "$1"; }
if have "$runtime" && have "$builder"; then exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "==> debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  echo "error: debootstrap bookworm from $mirror failed (log above)" >&2
  exit 1
}
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin
if ! have "$runtime"; then
  tar -C "$work/root" -c . | "${podman[@]}" import - "$runtime" >/dev/null
  echo "==> $runtime"
fi
if ! have "$builder"; then
  sysroot=$(rustc --print sysroot)
  echo "==> $builder: Debian build packages and the Rust toolchain at $sysroot"
  # The builder stage installs its packages itself; the toolchain is what
  # Debian cannot give (bookworm's rustc is too old).
  mkdir -p "$work/root/usr/local/rust"
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$work/root/usr/local/rust" -x
  for b in cargo rustc rustdoc; do ln -s "../rust/bin/$b" "$work/root/usr/local/bin/$b"; done
  tar -C "$work/root" -c . | "${podman[@]}" import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' - "$builder" >/dev/null
fi
