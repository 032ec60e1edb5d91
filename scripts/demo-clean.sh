#!/usr/bin/env bash
# `make demo-clean`: removes what `make demo` made, all of it under .sandbox/: the Debian roots,
# the registry storage, buildah's storage of the demo, the lock and the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -s .sandbox/ready ]; then
  pid=$(cat .sandbox/ready)
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "driver-matrix-s" ]; then
    echo "stopping the sandbox (pid $pid)"
    kill "$pid" 2>/dev/null || true
    sleep 1
  fi
fi
if [ -d .sandbox ]; then
  echo "removing .sandbox/ ($(du -sh .sandbox 2>/dev/null | cut -f1))"
  rm -rf .sandbox
fi
