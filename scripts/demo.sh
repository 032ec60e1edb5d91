#!/usr/bin/env bash
# `make demo`: driver-matrix end to end on this machine, with nothing from the internet but
# Debian packages. A local sandbox plays quay.io and the OpenShift update graph; the example
# drivers are compiled for every kernel of the matrix (both node OS streams of a RHEL 10
# release), signed, pushed, locked, verified (signers, and a release whose DTK is not its nodes'
# kernel) and turned into KMM Modules and BootModuleConfigs. Everything it makes lives in
# .sandbox/ (git-ignored; `make demo-clean` removes it). Run it again and nothing is rebuilt.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
sandbox=$repo/.sandbox
mkdir -p "$sandbox"

bold=""
reset=""
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  bold=$'\e[1m'
  reset=$'\e[0m'
fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
run() {
  printf '%s$ %s%s\n' "$bold" "$*" "$reset"
  "$@"
}

start=$(date +%s)

say "Installing what is missing (Debian packages only)"
scripts/install-deps.sh

say "Building driver-matrix and the sandbox"
run cargo build --release --quiet -p driver-matrix --bin driver-matrix \
  -p driver-matrix-sandbox --bin driver-matrix-sandbox
compiled=$(date +%s)

# buildah keeps the demo's images in a storage of its own under .sandbox/, so the demo leaves
# nothing in the machine's container storage. Reads of quay.io go to the sandbox's mirror
# because the matrix says so ([registries."quay.io"] mirror): driver-matrix hands buildah a
# registries.conf of its own.
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
cat >"$sandbox/storage.conf" <<EOF
[storage]
driver = "$STORAGE_DRIVER"
graphroot = "$sandbox/containers/storage"
runroot = "$sandbox/containers/run"
EOF
export CONTAINERS_STORAGE_CONF=$sandbox/storage.conf

say "Starting the sandbox: a registry mirroring quay.io on 127.0.0.1:5000, the update graph on 127.0.0.1:5001"
echo "(the first run bootstraps two Debian roots with kernel headers: a few minutes; then cached)"
rm -f "$sandbox/ready"
target/release/driver-matrix-sandbox --dir "$sandbox" >"$sandbox/sandbox.log" 2>&1 &
sandbox_pid=$!
tail -n +1 -f --pid="$sandbox_pid" "$sandbox/sandbox.log" &
tail_pid=$!
stop_sandbox() {
  kill "$tail_pid" 2>/dev/null || true
  if kill "$sandbox_pid" 2>/dev/null; then
    wait "$sandbox_pid" 2>/dev/null || true
  fi
}
trap stop_sandbox EXIT
trap 'exit 130' INT TERM
until [ -s "$sandbox/ready" ]; do
  if ! kill -0 "$sandbox_pid" 2>/dev/null; then
    kill "$tail_pid" 2>/dev/null || true
    echo "the sandbox did not start; see $sandbox/sandbox.log" >&2
    exit 1
  fi
  sleep 0.5
done
sleep 0.2
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true

# The demo's lock and cache stay in .sandbox/, so the repository's files are not touched.
dm=(target/release/driver-matrix -m matrix.example.toml --lockfile "$sandbox/matrix.lock"
  --cache-dir "$sandbox/cache")

say "Resolving each release: payload -> Driver Toolkit -> kernel, read from the registry"
echo "(4.17.0 is a RHEL 10 dual-stream release: two DTKs, two kernels. Each release's nodes'"
echo " kernel is read from its OS image; 4.15.3's nodes boot another kernel than its DTK carries,"
echo " so resolve warns: modules built on that DTK would not load there)"
run "${dm[@]}" resolve

say "What would be built: one job per driver and kernel, however many releases share it"
run "${dm[@]}" plan

say "Building (buildah, against each release's Driver Toolkit) and pushing"
run "${dm[@]}" build

say "Checking the pushed images, down to each module's vermagic and Secure Boot signer"
echo "(hello-kmod is signed at build time with sign-file and the key in .sandbox/signing/;"
echo " verify --deep requires every module to be signed by the driver's certificate)"
# verify exits 1 on any finding. The sandbox plants one (4.15.3), so the demo goes on when
# that kind is the only one, and stops on any other.
status=0
run "${dm[@]}" verify --deep >"$sandbox/verify.out" || status=$?
cat "$sandbox/verify.out"
if [ "$status" -eq 1 ] && ! grep '^FAIL' "$sandbox/verify.out" | grep -qv '^FAIL release '; then
  echo
  echo "verify exited 1, as it should here: every image passed, but release 4.15.3 ships a DTK"
  echo "whose kernel is not the one its nodes boot (the sandbox publishes it so on purpose):"
  echo "modules built on it would not load there. A real matrix would drop that release, or"
  echo "wait for a z-stream whose DTK matches."
elif [ "$status" -ne 0 ]; then
  echo "verify failed (exit $status) on something the sandbox did not plant" >&2
  exit "$status"
fi

say "The lock: which image digest serves which kernel, and which releases ship that kernel"
run cat "$sandbox/matrix.lock"

say "KMM Modules for the cluster, mapping each kernel to its image by digest"
run "${dm[@]}" export kmm

say "KMM preflight for an upgrade target: checks every Module against the kernel its nodes boot"
echo "(before upgrading a cluster to 4.16.1; one object per release given, its real-time kernel too"
echo " when a driver is built for it)"
run "${dm[@]}" export preflight --release 4.16.1

say "KMM BootModuleConfigs: load each driver at boot, before the network starts"
echo "(from an image already on the node: the first boot on a kernel pulls it once the network"
echo " is up and reboots; an image rebuilt for the same kernel is not fetched again)"
echo "(KMM's boot units pull <image>:\$(uname -r), so a driver qualifies only if its tag is the"
echo " bare kernel; the export refuses any other tag, exit 2, naming the fix. A kernel whose"
echo " release is not a valid tag, as Debian trixie's with its '+', cannot be served at boot:"
echo " the header names it)"
run "${dm[@]}" export boot

say "An OpenShift BuildConfig per job: the cluster's own build service as the builder"
echo "(printed, not applied: the demo has no cluster. From a git checkout the source is the"
echo " commit, refused when a context differs from it; --binary uploads the context instead."
echo " The first of the BuildConfigs:)"
run "${dm[@]}" -q export buildconfig --all --binary >"$sandbox/buildconfigs.yaml"
awk '/^---$/ { n++ } n <= 1' "$sandbox/buildconfigs.yaml"

# The rest works on a copy of the matrix and the example drivers, so the repository's files
# are never edited: a vendor's change to one driver, reviewed; then a refused image.
review=$sandbox/review
rm -rf "$review"
mkdir -p "$review/.sandbox"
cp matrix.example.toml "$review/"
cp -r examples "$review/"
cp -r "$sandbox/signing" "$review/.sandbox/"
cp "$sandbox/matrix.lock" "$review/matrix.lock"
printf '/.sandbox/\nmatrix.lock.lock\n' >"$review/.gitignore"
git -C "$review" init --quiet
git -C "$review" add -A
git -C "$review" -c user.name=demo -c user.email=demo@example.com commit --quiet -m "the drivers, built"
dmr=(target/release/driver-matrix -m "$review/matrix.example.toml" --lockfile "$review/matrix.lock"
  --cache-dir "$sandbox/cache")

say "A copy of the project elsewhere is still fresh: the inputs hash is the files, not the place"
run "${dmr[@]}" -q plan

say "A change to one driver's source: only its jobs go stale, only they rebuild, and the review says why"
echo "/* a vendor's fix */" >>"$review/examples/hello-kmod/hello.c"
run "${dmr[@]}" -q plan
run "${dmr[@]}" build
echo "(the review of the pull request: the lock at the last commit against the one just written)"
run "${dmr[@]}" diff git:HEAD

say "A tag never names an image the lock refused"
echo "(a typo in the driver's modules: the build pushes, reads the image back, refuses it, and the"
echo " public tag, which KMM and the nodes pull, stays at the digest the lock names)"
kernel=$(jq -r '[.jobs[] | select(.driver == "hello-kmod") | .kernel][0]' <<<"$("${dmr[@]}" -q plan --format json)")
image=$(jq -r --arg k "$kernel" '.jobs[] | select(.driver == "hello-kmod" and .kernel == $k) | .image' <<<"$("${dmr[@]}" -q plan --format json)")
sed -i 's/^modules = \["hello"\]/modules = ["helo"]/' "$review/matrix.example.toml"
status=0
run "${dmr[@]}" build --force --driver hello-kmod --kernel "$kernel" || status=$?
echo "build exited $status"
locked=$(grep -A8 'driver = "hello-kmod"' "$review/matrix.lock" | grep -A7 "kernel = \"$kernel\"" | sed -n 's/^digest = "\(.*\)"/\1/p' | head -1)
mirror=${image/quay.io/127.0.0.1:5000}
tagged=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$mirror" 2>/dev/null || echo "?")
echo "lock:       $locked"
echo "tag ${image##*:}: $tagged"
[ "$locked" = "$tagged" ] && echo "the tag still names the image the lock accepted"

say "Nodes on a kernel the lock lacks: KMM builds for it in the cluster (fallback = \"build\")"
echo "(above, each Module's header names 4.15.3, whose nodes boot a kernel no image is built for;"
echo " a newer z-stream is in the same case until the nightly builds it. KMM's in-cluster build"
echo " has no context and passes DTK_AUTO, so the vendor publishes the sources as an image, the"
echo " Containerfile copies from it and chains DTK_AUTO, and the driver asks for the fallback:)"
sed -i 's/^modules = \["helo"\]/modules = ["hello"]/' "$review/matrix.example.toml"
sources=127.0.0.1:5000/acme/acme-net-src:2.3.1
printf 'FROM scratch\nCOPY Kbuild acme_core.c acme_net.c /src/\n' >"$sandbox/sources.Containerfile"
buildah build --quiet --layers=false -t "$sources" -f "$sandbox/sources.Containerfile" "$review/examples/acme-net" >/dev/null
buildah push --quiet --tls-verify=false "$sources"
sed -i -e "s|^COPY Kbuild acme_core.c acme_net.c ./|COPY --from=$sources /src/ ./|" \
  -e 's|^ARG DTK_IMAGE$|ARG DTK_AUTO\nARG DTK_IMAGE=${DTK_AUTO}|' "$review/examples/acme-net/Containerfile"
sed -i '/^openshift = ">=4.15.2"$/a [driver.kmm]\nimage-repo-secret = "acme-push"\nfallback = "build"' \
  "$review/matrix.example.toml"
run grep -A3 '^\[driver.kmm\]' "$review/matrix.example.toml"
echo "(the Module's last mapping matches any other kernel and builds the ConfigMap's Containerfile:)"
"${dmr[@]}" -q export kmm >"$sandbox/fallback.yaml"
awk 'BEGIN { RS = "---\n" } /acme-net/ { printf "---\n%s", $0 }' "$sandbox/fallback.yaml"

say "Summary"
plan=$("${dm[@]}" -q plan --format json)
cells=$(jq '.summary.cells' <<<"$plan")
jobs=$(jq '.summary.jobs' <<<"$plan")
saved=$(jq '.summary.saved' <<<"$plan")
fresh=$(jq '.summary.fresh' <<<"$plan")
kernels=$(jq -r '[.jobs[].kernel] | unique | join(", ")' <<<"$plan")
releases=$(jq -r '[.jobs[].releases[]] | unique | join(", ")' <<<"$plan")
echo "releases:  $releases"
echo "kernels:   $kernels"
echo "images:    $jobs (one per driver and kernel; $fresh fresh in the lock)"
echo "           $(jq -r '[.jobs[] | "\(.driver) \(.kernel)"] | join("\n           ")' <<<"$plan")"
echo "builds:    $jobs for $cells (driver, release stream) cells: $saved saved by sharing kernels"
echo "lock:      $sandbox/matrix.lock"
echo "took:      $(($(date +%s) - start)) s, $((compiled - start)) s of it compiling (run \`make demo\` again: nothing is rebuilt)"
