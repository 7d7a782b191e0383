// Command pause is the sandbox ("infra") container of the test node's Pods: it holds the
// Pod's namespaces and does nothing else. Upstream's registry.k8s.io/pause cannot be
// pulled here (no registry is reachable), so tests/node/build.sh builds this one into a
// local image and containerd is configured to use it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	// SIGCHLD is not watched: Pods of the test node do not share their PID namespace, so
	// there are no orphans to reap.
	<-signals
}
