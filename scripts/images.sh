#!/usr/bin/env bash
# `make images`: the five CareOps service images, built with podman from the repo's Dockerfile on
# a Debian bookworm base that mmdebstrap makes from Debian's packages (no Docker engine and no
# Docker Hub are needed). Steps:
#   1. scripts/image-deps.sh: podman, runc, mmdebstrap (skips what is there);
#   2. the base image localhost/careops-base:bookworm-<key>, where <key> hashes the suite and the
#      package list: skipped when that tag exists, else mmdebstrap | podman import;
#   3. podman build --build-arg SERVICE=<svc> --build-arg PYTHON_IMAGE=<base> for each service,
#      tagged localhost/careops-<svc>:<chart appVersion> (what the chart's pods name) and :latest.
#   bash scripts/images.sh               everything
#   bash scripts/images.sh base          only make sure the base image exists; print its name
#   SERVICES="ticketing gateway" bash scripts/images.sh     a subset
# Timings of each step are printed at the end (docs/images.md records them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="$ROOT/scripts/containers.conf"
SUITE=bookworm
# What the Dockerfile needs of its base: python3 (3.11 on bookworm) with venv, the IANA zones for
# the SLA business calendars, CA certificates for pip and TLS clients, passwd for useradd.
BASE_PACKAGES=(python3 python3-venv tzdata ca-certificates passwd)
# The five images (build arg SERVICE = the package whose `main` the container runs).
SERVICES=(${SERVICES:-ticketing customer incident quality gateway})
ULIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
# The RUN steps trust what this machine trusts (its CA bundle bind-mounted over the base's, which
# the Dockerfile points pip at): pip then works behind a TLS-inspecting proxy too. Not in a layer.
CA_BUNDLE="${CAREOPS_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
CA_MOUNT=()
[[ -f "$CA_BUNDLE" ]] && CA_MOUNT=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
TAG="$(awk -F'"' '/^appVersion:/ {print $2}' "$ROOT/charts/careops/Chart.yaml")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

base_image() {
  local key
  key="$(printf '%s\n' "$SUITE" minbase "${BASE_PACKAGES[@]}" | sha256sum | cut -c1-12)"
  echo "localhost/careops-base:$SUITE-$key"
}

ensure_base() {
  local image="$1"
  if podman image exists "$image"; then
    log "base $image exists (same suite and package list): skipped"
    return 0
  fi
  log "mmdebstrap $SUITE + ${BASE_PACKAGES[*]} -> $image"
  local work
  work="$(mktemp -d)"
  # minbase: essential packages and apt only; documentation and translations are left out.
  # No mirror argument: mmdebstrap takes Debian's default with the suite's updates and security.
  mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/base.tar"
  podman import --quiet --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.title=careops-base" \
    "$work/base.tar" "$image" >/dev/null
  rm -rf "$work"
}

build_service() {
  local service="$1" base="$2"
  log "podman build careops-$service ($base)"
  podman build --quiet --network host "${ULIMITS[@]}" "${CA_MOUNT[@]}" -f "$ROOT/Dockerfile" \
    --build-arg SERVICE="$service" --build-arg PYTHON_IMAGE="$base" \
    -t "localhost/careops-$service:$TAG" -t "localhost/careops-$service:latest" "$ROOT" >/dev/null
}

start=$SECONDS
bash "$ROOT/scripts/image-deps.sh" >&2
BASE="$(base_image)"
ensure_base "$BASE"
timings=("base $((SECONDS - start))s")
if [[ "${1:-}" == "base" ]]; then
  echo "$BASE"
  exit 0
fi
for service in "${SERVICES[@]}"; do
  step=$SECONDS
  build_service "$service" "$BASE"
  timings+=("$service $((SECONDS - step))s")
done
podman images --filter reference='localhost/careops-*' \
  --format '{{.Repository}}:{{.Tag}} {{.Size}}' | sort >&2
log "images built in $((SECONDS - start))s (${timings[*]})"
