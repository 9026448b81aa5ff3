#!/usr/bin/env bash
# The base images of `make test-deploy`, made locally (no image registry is reachable from the test
# machine) and cached so that a warm run builds none of them:
#
#   localhost/debian-base:bookworm          debootstrap --variant=minbase bookworm, imported
#   localhost/recserve-python:3.11-bookworm Debian's python3.11 on it (Dockerfile.python)
#   localhost/recserve-test-tools:bookworm  Debian's redis, prometheus, haproxy (Dockerfile.tools)
#   localhost/recserve-test-postgres:bookworm Debian's PostgreSQL 15 (Dockerfile.postgres)
#
# Two cache levels: podman's own storage (an image already there is used as is), and files under
# RECSERVE_CACHE_DIR (default /var/cache/recserve) that survive a wiped podman storage: the
# debootstrapped root as a tarball, and each built image as a `podman save` archive named after
# the hash of what it is built from (its Dockerfile, the files it copies, the base's tarball), so
# editing a Dockerfile rebuilds that image and the ones after it, nothing else.
#
# The mirror is the one this machine's apt uses (first `URIs:`/`deb` line of /etc/apt/sources.list*),
# so no other network source is needed. Run as root (debootstrap chroots).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${RECSERVE_CACHE_DIR:-/var/cache/recserve}
SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN=localhost/debian-base:$SUITE
mkdir -p "$CACHE"

log() { echo "base-image: $*"; }
# Only the steps that build take the shared heavy-job lock: a warm run (everything cached) needs
# no turn on a busy host.
LOCK=${RECSERVE_HEAVY_LOCK:-/tmp/recserve-heavy.lock}
# RECSERVE_HEAVY_LOCK=none: no lock (see stack.sh; never run this under a flock of the same file).
heavy() { if [[ $LOCK == none ]]; then timeout 900 "$@"; else flock "$LOCK" timeout 900 "$@"; fi; }

# -- the debootstrapped Debian ------------------------------------------------------------------
tarball=$CACHE/debian-$SUITE-minbase.tar
if [[ ! -s $tarball ]]; then
  mirror=$(grep -h -o -E '(URIs:|^deb)\s+https?://[^ ]+/debian\b' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -o -E 'https?://[^ ]+' | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  dir=$(mktemp -d /var/tmp/recserve-debootstrap.XXXXXX)
  trap 'rm -rf "$dir" "$dir.log"' EXIT
  log "debootstrap --variant=minbase $SUITE from $mirror"
  started=$(date +%s)
  heavy debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 || {
    tail -n 30 "$dir.log" >&2
    log "debootstrap failed (log above)" >&2
    exit 1
  }
  # Leave apt's lists out of the image (like the official slim images): each build runs apt-get update.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  # Written aside and renamed: an interrupted run never leaves a truncated tarball in the cache.
  tar -C "$dir" -c . >"$tarball.part" && mv "$tarball.part" "$tarball"
  rm -rf "$dir" "$dir.log"
  trap - EXIT
  log "debootstrapped in $(($(date +%s) - started)) s, cached as $tarball"
  podman rmi -f "$DEBIAN" >/dev/null 2>&1 || true  # a new root: the old import is stale
fi
# The tarball's own hash labels the import, so the images built on it know which root they have.
root_hash=$(sha256sum "$tarball" | cut -c1-16)
if [[ $(podman image inspect --format '{{index .Labels "recserve.root"}}' "$DEBIAN" 2>/dev/null || true) != "$root_hash" ]]; then
  podman import -q --change 'CMD ["/bin/bash"]' --change "LABEL recserve.root=$root_hash" "$tarball" "$DEBIAN" >/dev/null
  log "imported $DEBIAN from $tarball"
fi

# -- images built on it ---------------------------------------------------------------------------
# build IMAGE DOCKERFILE [FILES COPIED...]: reuse the image if podman has this very build, else
# load it from the cache's archive, else build it and archive it.
build() {
  local image=$1 dockerfile=$2 key archive
  shift 2
  key=$( (echo "$root_hash"; cat "$HERE/$dockerfile"; for f in "$@"; do cat "$HERE/$f"; done) | sha256sum | cut -c1-16)
  archive=$CACHE/$(echo "${image#localhost/}" | tr ':/' '__')-$key.tar
  if [[ $(podman image inspect --format '{{index .Labels "recserve.key"}}' "$image" 2>/dev/null || true) == "$key" ]]; then
    log "$image: present (key $key)"
  elif [[ -s $archive ]] && podman load -q -i "$archive" >/dev/null; then
    log "$image: loaded from $archive"
  else
    local started
    started=$(date +%s)
    heavy podman build -q --network host --format docker --label "recserve.key=$key" \
      --build-arg DEBIAN_BASE="$DEBIAN" -f "$HERE/$dockerfile" -t "$image" "$HERE" >/dev/null
    rm -f "$CACHE/$(echo "${image#localhost/}" | tr ':/' '__')"-*.tar  # older keys of this image
    podman save -q --format docker-archive -o "$archive.part" "$image" && mv "$archive.part" "$archive"
    log "$image: built in $(($(date +%s) - started)) s, cached as $archive"
  fi
}

build localhost/recserve-python:3.11-bookworm Dockerfile.python
build localhost/recserve-test-tools:bookworm Dockerfile.tools
build localhost/recserve-test-postgres:bookworm Dockerfile.postgres postgres-entrypoint.sh
