// Package deploy holds no code: its directory has the deployment files for
// replicas on a NATS JetStream cluster (Kubernetes manifests, values for the
// official NATS Helm chart, a compose file), and deploy_test.go checks them.
package deploy
