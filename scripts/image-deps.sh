#!/usr/bin/env bash
# Installs what `make images` and `make images-test` need from Debian's packages: podman (the
# container engine; there is no Docker engine here), runc (its OCI runtime: crun refuses this
# machine's hybrid cgroup layout), mmdebstrap (builds the bookworm base image from Debian's
# packages) and catatonit (the pause process of `podman kube play`'s pods). Skips whatever is there; safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# podman's other Recommends (CNI plugins, slirp4netns, ...) are not needed with host networking.
PACKAGES=(podman runc mmdebstrap catatonit)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  # Other sessions may hold the dpkg lock for a while: wait for it rather than fail.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
