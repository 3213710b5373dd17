#!/usr/bin/env bash
# Builds the container image from the top-level Dockerfile with podman and
# runs `smsflow --version` in it as the image's own user (docs/container.md).
#
# On a machine that reaches no container registry (this project's CI) the
# two base images are local stand-ins made from Debian packages
# (container_bases.sh) and the crates come from `cargo vendor` on the host,
# mounted into the build, so the build reaches only Debian's archive.
# Storage: podman's vfs driver (no overlay mounts needed); isolation: chroot
# (no nested user namespaces or cgroups needed).
#
# Usage: tests/helpers/image_test.sh   (from anywhere; needs root, podman,
# buildah and debootstrap: scripts/tools.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/../.."
podman=(podman --storage-driver vfs)
buildah=(buildah --storage-driver vfs)
image=localhost/smsflow:test
tests/helpers/container_bases.sh --storage-driver vfs

vendor=$(mktemp -d)
ctr=
# vfs keeps a full copy of the file system per layer (about 1.3 GB each in
# the builder stage): drop this run's image and intermediate layers at the
# end, keeping only the two base images for the next run.
cleanup() {
  [ -z "$ctr" ] || "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true
  "${podman[@]}" rmi --force "$image" >/dev/null 2>&1 || true
  "${podman[@]}" image prune --force >/dev/null 2>&1 || true
  rm -rf "$vendor"
}
trap cleanup EXIT
echo "==> cargo vendor (the build's crates, from crates.io through the host)"
cargo vendor --locked --quiet "$vendor" >/dev/null

echo "==> podman build (release build of smsflow inside the builder stage)"
"${podman[@]}" build --quiet --isolation chroot \
  --volume "$vendor:/vendor:ro" --build-arg CARGO_VENDOR=/vendor \
  --build-arg RUST_IMAGE=localhost/smsflow-base/rust:bookworm \
  --build-arg RUNTIME_IMAGE=localhost/smsflow-base/debian:bookworm-slim \
  --tag "$image" . >/dev/null

# `podman run` needs crun to set rlimits, which this sandbox refuses
# (docs/container.md); buildah runs the image's command as its USER with
# chroot isolation instead.
ctr=$("${buildah[@]}" from --quiet "$image")
user=$("${buildah[@]}" run --isolation chroot "$ctr" -- id -u)
version=$("${buildah[@]}" run --isolation chroot "$ctr" -- smsflow --version)
want="smsflow $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
if [ "$user" = 0 ]; then
  echo "error: the image runs as root (uid 0); the Dockerfile's USER must be a non-root uid" >&2
  exit 1
fi
if [ "$version" != "$want" ]; then
  echo "error: smsflow --version in the image printed '$version', expected '$want'" >&2
  exit 1
fi
entrypoint=$("${podman[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$image")
if [ "$entrypoint" != '["smsflow"]' ]; then
  echo "error: the image's entrypoint is $entrypoint, expected [\"smsflow\"]" >&2
  exit 1
fi
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image $image: $version as uid $user, entrypoint $entrypoint, $((size / 1000000)) MB"
