#!/usr/bin/env bash
# The baseline driver-matrix's resolver is measured against: what a shell script does today
# with skopeo, tar and jq. For one release: copy the whole payload to a directory, untar
# image-references from its last layer, take the DTK reference, copy the whole DTK, and look for
# etc/driver-toolkit-release.json in its layers (last first).
#
#   benches/baseline-skopeo.sh REGISTRY PAYLOAD_REF [WORKDIR]
#
# REGISTRY is host:port (plain HTTP); PAYLOAD_REF is host:port/repo:tag. Prints one line:
# `bytes=<bytes copied> kernel=<KERNEL_VERSION> dtk=<reference>`.
set -euo pipefail

registry=$1
payload=$2
work=${3:-$(mktemp -d)}
mkdir -p "$work"
trap 'rm -rf "$work/payload" "$work/dtk"' EXIT

skopeo copy -q --src-tls-verify=false "docker://$payload" "dir:$work/payload"
last=$(jq -r '.layers[-1].digest | sub("sha256:"; "")' "$work/payload/manifest.json")
dtk=$(tar -xzOf "$work/payload/$last" release-manifests/image-references 2>/dev/null \
  || zstd -dc "$work/payload/$last" | tar -xOf - release-manifests/image-references)
dtk=$(jq -r '.spec.tags[] | select(.name == "driver-toolkit") | .from.name' <<<"$dtk")
# The payload names the DTK on the same registry in the benchmark's fixtures.
skopeo copy -q --src-tls-verify=false "docker://$dtk" "dir:$work/dtk"
kernel=""
for layer in $(jq -r '.layers | reverse | .[].digest | sub("sha256:"; "")' "$work/dtk/manifest.json"); do
  if json=$(tar -xzOf "$work/dtk/$layer" etc/driver-toolkit-release.json 2>/dev/null); then
    kernel=$(jq -r .KERNEL_VERSION <<<"$json")
    break
  fi
done
bytes=$(du -sb "$work/payload" "$work/dtk" | awk '{s += $1} END {print s}')
echo "bytes=$bytes kernel=$kernel dtk=$dtk"
