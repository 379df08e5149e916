//go:build tools

// Package tools names the Kubernetes commands deploy/dev/install-kube.sh builds, so that
// `go mod tidy` records every module they need in go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
