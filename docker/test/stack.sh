#!/usr/bin/env bash
# `make test-deploy`: build the project's image and run the whole compose stack on podman, then
# check it from tests/deploy/test_compose_stack.py. Loopback only; everything is torn down after.
#
# Why podman: no Docker engine runs on the CI machine, but Debian's podman does, and its Docker
# API (`podman system service`) is enough for docker-compose. No image registry is reachable, so
# every base is built locally: a debootstrapped Debian (cached in podman's storage between runs),
# Debian's python3.11 on it as the stand-in for python:3.11-slim-bookworm, and Debian's redis,
# prometheus and haproxy packages as stand-ins for the hub images (docker/test/compose.podman.yml).
#
# Fails loudly (non-zero, with the reason) when a prerequisite is missing; it never skips.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

PY=${PY:-python3}
PIP=${PIP:-pip3}
export CONTAINERS_CONF="$ROOT/docker/podman/containers.conf"
PYTHON_BASE=localhost/recserve-python:3.11-bookworm  # made by base-image.sh
IMAGE=localhost/recserve:latest

fail() { echo "test-deploy: FAILED: $*" >&2; exit 1; }
step() { echo "test-deploy: [$(date +%T)] $*"; }

[[ $(id -u) == 0 ]] || fail "needs root (debootstrap chroots; podman runs rootful here)"
for tool in podman runc debootstrap docker-compose; do
  command -v "$tool" >/dev/null || fail "\`$tool\` not installed (apt-get install podman runc debootstrap docker-compose)"
done
[[ -x /usr/lib/cni/dnsname ]] || fail "CNI dnsname plugin missing: containers could not resolve each other by service name (apt-get install golang-github-containernetworking-plugin-dnsname)"

# Heavy steps take the shared lock one at a time (a shared 2-core host: builds and the stack must
# not run beside other heavy jobs), so no single hold is much longer than its step.
LOCK=${RECSERVE_HEAVY_LOCK:-/tmp/recserve-heavy.lock}
# It takes the lock itself, step by step: do not wrap `make test-deploy` in a flock of the same
# file (each step would wait for its own parent; seen: a 25-minute stall). RECSERVE_HEAVY_LOCK=none
# runs the steps without a lock (a machine of its own).
heavy() {
  local limit=$1; shift
  if [[ $LOCK == none ]]; then timeout "$limit" "$@"; else flock "$LOCK" timeout "$limit" "$@"; fi
}

started=$(date +%s)
step "base images (debootstrapped Debian, python, redis/prometheus/haproxy, postgres; cached in ${RECSERVE_CACHE_DIR:-/var/cache/recserve})"
"$ROOT/docker/test/base-image.sh" || fail "base images (docker/test/base-image.sh; it locks its builds itself)"

# The CPU torch wheel lies in pip's configured find-links on this machine; a build cannot see it,
# so it goes into the build context's wheelhouse/ (gitignored).
if ! ls wheelhouse/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  links=$("$PIP" config list 2>/dev/null | sed -n -E "s/^[^=]*find-links='([^']*)'.*/\1/p" | head -n1)
  wheel=$(ls ${links:-/nonexistent}/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)
  [[ -n $wheel ]] || fail "no torch-2.13.0+cpu wheel in pip's find-links (${links:-none}) and download.pytorch.org is unreachable here"
  cp "$wheel" wheelhouse/
fi

# This network intercepts TLS: pip inside the build must trust the host's CA bundle.
cp /etc/ssl/certs/ca-certificates.crt wheelhouse/ca-certificates.crt

step "project image ($IMAGE) from the Dockerfile, base $PYTHON_BASE"
# The index for torch is PyPI here (download.pytorch.org is unreachable); the +cpu wheel in
# wheelhouse/ wins over PyPI's 2.13.0 because pip prefers the higher version and 2.13.0+cpu sorts
# above 2.13.0. The stack test checks the image really holds the +cpu build.
heavy 900 podman build --network host --format docker \
  --build-arg BASE_IMAGE="$PYTHON_BASE" \
  --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
  --build-arg PIP_CERT=/wheelhouse/ca-certificates.crt \
  -t "$IMAGE" . >/tmp/recserve-test-deploy-build.log 2>&1 \
  || { tail -n 40 /tmp/recserve-test-deploy-build.log >&2; fail "podman build of the Dockerfile (log: /tmp/recserve-test-deploy-build.log)"; }
# Earlier builds of the image, now untagged, would pile up in podman's storage run after run.
podman image prune -f >/dev/null 2>&1 || true
step "built in $(($(date +%s) - started)) s so far"

sock_dir=$(mktemp -d /tmp/recserve-podman.XXXXXX)
SOCK="$sock_dir/podman.sock"
podman system service --time=0 "unix://$SOCK" >"$sock_dir/service.log" 2>&1 &
service_pid=$!
cleanup() {
  # The pytest fixture tears the stack down; this catches a run interrupted before it could.
  DOCKER_HOST="unix://$SOCK" docker-compose -p recserve-test-deploy \
    -f docker-compose.yml -f docker/test/compose.podman.yml down -v --remove-orphans >/dev/null 2>&1 || true
  kill "$service_pid" 2>/dev/null || true
  wait "$service_pid" 2>/dev/null || true
  rm -rf "$sock_dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || fail "podman system service did not create $SOCK: $(cat "$sock_dir/service.log")"

step "compose stack"
heavy 900 env RECSERVE_STACK_DOCKER_HOST="unix://$SOCK" RECSERVE_STACK_IMAGE="$IMAGE" \
  "$PY" -m pytest tests/deploy/test_compose_stack.py -p no:cacheprovider -x -rA -s
step "passed in $(($(date +%s) - started)) s"
