#!/usr/bin/env bash
# Installs the system packages the tests and the demo need, when they are missing.
# Debian and Ubuntu only; uses sudo only when not root.
set -euo pipefail

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
# The end-to-end test runs each built image as a client would (podman pull + run).
command -v podman >/dev/null 2>&1 || need+=(podman)
# ... with runc: crun, podman's default, refuses the hybrid cgroup hierarchies of CI machines.
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v modinfo >/dev/null 2>&1 || [ -x /sbin/modinfo ] || need+=(kmod)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v jq >/dev/null 2>&1 || need+=(jq)
# Module signing keys (the demo's, the signature tests').
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# The sandbox's final-stage base image carries a static busybox (sh, sleep) beside kmod.
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The DKMS end-to-end test (tests/it/dkms.rs) builds a real module from the source of a Debian
# DKMS package, fetched here once (tests reach no network): acpi-call-dkms, one small C file
# that builds on both sandbox kernels (6.1 and 6.12; bookworm's v4l2loopback-dkms 0.12.7 calls
# strlcpy, gone since 6.8). Unpacked into .sandbox/dkms/ (git-ignored).
dkms=$(cd "$(dirname "$0")/.." && pwd)/.sandbox/dkms
if ! ls "$dkms"/usr/src/acpi-call-*/Makefile >/dev/null 2>&1; then
  mkdir -p "$dkms/deb"
  if ! (cd "$dkms/deb" && apt-get download -qq acpi-call-dkms 2>/dev/null); then
    $sudo apt-get update -qq
    (cd "$dkms/deb" && apt-get download -qq acpi-call-dkms)
  fi
  dpkg-deb -x "$(ls "$dkms"/deb/acpi-call-dkms_*.deb | head -n1)" "$dkms"
fi
