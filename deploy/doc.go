// Package deploy holds the files users copy to run Cairn: the Kubernetes
// manifests (kubernetes/, a kustomization of a three-replica StatefulSet),
// the container image (docker/Dockerfile), a local cluster with an S3
// server (compose/) and a systemd unit for VMs (systemd/). README.md in
// this directory explains how to use each.
//
// The files are embedded in Files, and LoadKubernetes reads the manifests
// the way the API server would: every object strictly decoded into its
// Kubernetes API type, unknown and duplicate fields rejected. The tests of
// this package check each file against the cairn binary (configuration
// keys, --validate-only, probe paths, ports); tests/e2e runs the
// StatefulSet's configuration as three real processes and rolls them.
package deploy
