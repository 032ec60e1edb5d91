#!/usr/bin/env bash
# Runs a command with a throwaway OCI registry (Debian's docker-registry) on a free loopback
# port. The command sees DRIVER_MATRIX_TEST_REGISTRY=127.0.0.1:PORT; the registry and its
# storage are removed when the command ends, however it ends.
set -euo pipefail

dir=$(mktemp -d -t driver-matrix-registry.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML

docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$dir/registry.log" >&2
    echo "the test registry did not start" >&2
    exit 1
  fi
  sleep 0.1
done

export DRIVER_MATRIX_TEST_REGISTRY="127.0.0.1:$port"
echo "test registry on $DRIVER_MATRIX_TEST_REGISTRY" >&2

# buildah's images and containers live in a storage of this run's own, removed with it, unless
# the caller chose one: the tests leave working containers behind (buildah 1.28 keeps the
# container of an empty build stage), and in a machine's shared storage they pile up from run to
# run until buildah itself fails (it panics naming a container once too many names are taken).
if [ -z "${CONTAINERS_STORAGE_CONF:-}" ]; then
  cat >"$dir/storage.conf" <<CONF
[storage]
driver = "${STORAGE_DRIVER:-vfs}"
graphroot = "$dir/containers/storage"
runroot = "$dir/containers/run"
CONF
  export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
fi
"$@"
