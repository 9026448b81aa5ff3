#!/usr/bin/env bash
# Build localhost/debian-base:bookworm with debootstrap, unless podman already has it (no image
# registry is reachable from the test machine, so every base image is made locally).
#
# The mirror is the one this machine's apt uses (first `URIs:`/`deb` line of /etc/apt/sources.list*),
# so no other network source is needed. Run as root (debootstrap chroots).
set -euo pipefail

IMAGE=${BASE_IMAGE_NAME:-localhost/debian-base:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}

if podman image exists "$IMAGE"; then
  echo "base-image: $IMAGE already present (cached), not debootstrapping"
  exit 0
fi

mirror=$(grep -h -o -E '(URIs:|^deb)\s+https?://[^ ]+/debian\b' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -o -E 'https?://[^ ]+' | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

dir=$(mktemp -d /var/tmp/recserve-debootstrap.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "base-image: debootstrap --variant=minbase $SUITE from $mirror"
started=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 || {
  tail -n 30 "$dir.log" >&2
  echo "base-image: debootstrap failed (log above)" >&2
  exit 1
}
rm -f "$dir.log"
# Leave apt's lists out of the image (like the official slim images): each build runs apt-get update.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
tar -C "$dir" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE in $(($(date +%s) - started)) s"
