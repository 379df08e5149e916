#!/usr/bin/env bash
# Install Helm, which the chart tests (k8s-tests/) use to lint and render helm/ferrite, from
# the Go module proxy with `go install`.
#
#   binary:  ${FERRITE_TOOLS_DIR:-$HOME/.cache/ferrite-tools}/bin/helm
#   stamp:   .../bin/helm.version  ("<module>@<version>", written only after a good install)
#
# Idempotent: nothing happens when the binary and a stamp for the pinned version are there.
# Otherwise it builds (about two minutes on 2 cores the first time; the Go module cache makes
# later builds faster), installs through a temp dir so a failed build never leaves a broken
# binary behind, and fails loudly. Concurrent runs are serialised with flock.
#
# Needs Go >= 1.26 (PATH or /usr/local/go/bin). Run by deploy/dev/setup.sh.
set -euo pipefail

say() { printf 'install-helm: %s\n' "$*"; }
die() { printf 'install-helm: ERROR: %s\n' "$*" >&2; exit 1; }

# The pin.
HELM_MODULE="helm.sh/helm/v3/cmd/helm"
HELM_VERSION="v3.22.0"
GO_MIN_MINOR=26 # helm v3.22.0's go.mod says `go 1.26.0`
# What Helm's own Makefile stamps into a release build, which `go install` alone leaves at
# the source defaults: the version `helm version` prints, and the Kubernetes version that
# `helm template` and `helm lint` assume without a cluster (Helm derives it from the
# k8s.io/client-go it is built with: v0.37.0 -> 1.37; the source default is 1.20).
K8S_MAJOR=1
K8S_MINOR=37
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    LDFLAGS="$LDFLAGS -X $pkg.k8sVersionMajor=$K8S_MAJOR -X $pkg.k8sVersionMinor=$K8S_MINOR"
done

# shellcheck source=go.sh
. "$(dirname "${BASH_SOURCE[0]}")/go.sh"
go_install_tool Helm helm "$HELM_MODULE@$HELM_VERSION" "$GO_MIN_MINOR" "$LDFLAGS" version --short
