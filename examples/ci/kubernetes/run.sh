#!/usr/bin/env bash
# The Kubernetes route end to end: cut the plan into shards, run them as an Indexed Job, wait,
# then rebuild the lock from the registry. Needs kubectl (or oc) logged in to the cluster.
set -euo pipefail

namespace=${NAMESPACE:-driver-matrix}
image=${RUNNER_IMAGE:-quay.io/acme/driver-matrix-runner:latest}

driver-matrix resolve
shards=$(driver-matrix export github-matrix | jq '.include | length')
driver-matrix export k8s-job --shards "$shards" --image "$image" --namespace "$namespace" >job.yaml

kubectl -n "$namespace" delete job driver-matrix-build --ignore-not-found
kubectl -n "$namespace" apply -f job.yaml
kubectl -n "$namespace" wait --for=condition=complete --timeout=6h job/driver-matrix-build

driver-matrix collect
driver-matrix verify --deep
driver-matrix diff git:HEAD
