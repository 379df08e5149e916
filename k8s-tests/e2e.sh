#!/usr/bin/env bash
# The load-and-scale check of k8s-tests/scenario.py on a real Kubernetes cluster: kind, k3d,
# or any cluster that pulls from a registry you can push to (EKS, GKE, ...).
#
#   k8s-tests/e2e.sh kind [CLUSTER]        # kind cluster (default name: kind)
#   k8s-tests/e2e.sh k3d [CLUSTER]         # k3d cluster (default name: k3s-default)
#   k8s-tests/e2e.sh registry REPOSITORY   # push the image to REPOSITORY (e.g. ghcr.io/me/ferrite)
#
# It builds the image (make image: docker, podman or buildah), makes it available to the
# cluster, installs helm/ferrite into a fresh namespace with the bundled PostgreSQL and MinIO
# (dev.enabled=true), 1 catalog, 2 routers, 2 ingesters, 1 querier and 1 compactor, and the
# fast persisting and compaction settings of `scenario.py --print-values`, runs the check
# (writes and queries through the router Service while every tier is scaled and restarted,
# the compactor given a standby and its active pod scaled away; every acknowledged write must
# then be stored exactly once, the compactor must have compacted, and its pods' logs,
# followed with `kubectl logs -f`, must show one lease holder at a time), and uninstalls.
#
# Uses kubectl's current context. Needs kubectl, helm, python3 with `requests` (a venv is
# made under ~/.cache/ferrite-e2e-venv when it is missing), and kind/k3d for those modes.
# Environment: NAMESPACE (default ferrite-e2e), RELEASE (default e2e), TAG (default: the git
# commit), KEEP=1 to leave the release installed, FRONT_DOOR_URL to reach the router Service
# directly instead of through `kubectl port-forward`.
#
# The repository's own tests (make test) cannot run this: there is no container runtime on
# the machines they run on. They run the same check with a stand-in kubelet instead
# (k8s-tests/test_e2e.py).
set -euo pipefail

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 ]] || usage
mode=$1
target=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
namespace=${NAMESPACE:-ferrite-e2e}
release=${RELEASE:-e2e}
tag=${TAG:-$(git -C "$repo" rev-parse --short HEAD)}

case $mode in
    kind | k3d) image_repo=ferrite ;;
    registry)
        [[ -n $target ]] || usage
        image_repo=$target
        ;;
    *) usage ;;
esac

for tool in kubectl helm python3; do
    command -v "$tool" >/dev/null || { echo "e2e.sh: $tool is not on PATH" >&2; exit 1; }
done

echo "== building the image ferrite:$tag"
make -C "$repo" image IMAGE="ferrite:$tag"
engine=$(command -v docker || command -v podman || true)

case $mode in
    kind)
        command -v kind >/dev/null || { echo "e2e.sh: kind is not on PATH" >&2; exit 1; }
        if [[ $(basename "${engine:-}") == podman ]]; then
            archive=$(mktemp --suffix=.tar)
            podman save -o "$archive" "ferrite:$tag"
            kind load image-archive "$archive" --name "${target:-kind}"
            rm -f "$archive"
        else
            kind load docker-image "ferrite:$tag" --name "${target:-kind}"
        fi
        ;;
    k3d)
        command -v k3d >/dev/null || { echo "e2e.sh: k3d is not on PATH" >&2; exit 1; }
        k3d image import "ferrite:$tag" --cluster "${target:-k3s-default}"
        ;;
    registry)
        [[ -n $engine ]] || { echo "e2e.sh: pushing needs docker or podman" >&2; exit 1; }
        "$engine" tag "ferrite:$tag" "$image_repo:$tag"
        "$engine" push "$image_repo:$tag"
        ;;
esac

python=python3
if ! python3 -c 'import requests' 2>/dev/null; then
    venv=$HOME/.cache/ferrite-e2e-venv
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q requests
    python=$venv/bin/python
fi

values=$(mktemp --suffix=.json)
cleanup() {
    rm -f "$values"
    if [[ ${KEEP:-0} != 1 ]]; then
        helm uninstall "$release" --namespace "$namespace" --wait >/dev/null 2>&1 || true
        kubectl delete namespace "$namespace" --wait=false >/dev/null 2>&1 || true
    else
        echo "KEEP=1: release $release left in namespace $namespace"
    fi
}
trap cleanup EXIT

echo "== installing the chart into namespace $namespace"
# The tiers' starting sizes, and ingesters and a compactor fast enough for the check.
"$python" "$repo/k8s-tests/scenario.py" --print-values >"$values"
kubectl create namespace "$namespace"
helm install "$release" "$repo/helm/ferrite" --namespace "$namespace" -f "$values" \
    --set dev.enabled=true \
    --set image.repository="$image_repo" --set image.tag="$tag" \
    --set image.pullPolicy=IfNotPresent

echo "== load and scale"
args=(--namespace "$namespace" --release "$release")
[[ -n ${FRONT_DOOR_URL:-} ]] && args+=(--url "$FRONT_DOOR_URL")
"$python" "$repo/k8s-tests/scenario.py" "${args[@]}"
