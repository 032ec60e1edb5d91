#!/usr/bin/env bash
# The OpenShift route end to end: a BuildConfig per job still to build, built by the cluster's
# build service, then the lock rebuilt from the registry and reviewed. Needs `oc` logged in,
# the matrix committed and pushed (the builds clone the commit), and in the namespace:
# - the Secret driver-matrix-registry (kubernetes.io/dockerconfigjson) that pulls the Driver
#   Toolkit (the cluster's pull secret) and pushes to the drivers' repositories;
# - the Secret <driver>-build-secrets of each driver with secrets (the export's header prints
#   the `oc create secret generic` commands).
set -euo pipefail

namespace=${NAMESPACE:-driver-matrix}

driver-matrix resolve
driver-matrix export buildconfig --namespace "$namespace" >buildconfigs.yaml
if grep -q '^kind: "BuildConfig"\|^kind: BuildConfig' buildconfigs.yaml; then
  # A BuildConfig starts its build when it is created (its ConfigChange trigger), so the
  # exported ones replace any left from an earlier night.
  oc -n "$namespace" delete -f buildconfigs.yaml --ignore-not-found --wait
  builds=$(oc -n "$namespace" create -f buildconfigs.yaml -o name | sed -n 's|^buildconfig[^/]*/\(.*\)$|\1-1|p')
  failed=0
  for build in $builds; do
    while :; do
      phase=$(oc -n "$namespace" get "build/$build" -o jsonpath='{.status.phase}' 2>/dev/null || true)
      case "$phase" in
        Complete) break ;;
        Failed | Error | Cancelled) echo "build $build: $phase" >&2; failed=1; break ;;
        *) sleep 20 ;;
      esac
    done
  done
  # A failed build leaves its job unlocked: collect and verify say which; the lock stays true.
  [ "$failed" = 0 ] || echo "some builds failed; collecting the others" >&2
else
  echo "every job is fresh: nothing to build"
fi

driver-matrix collect
driver-matrix verify --deep
driver-matrix diff git:HEAD --format markdown
