//go:build tools

// Package tools records the etcd server command this module builds, so that
// `go mod tidy` keeps its dependencies in go.mod/go.sum. It is never compiled.
//
// etcd lives in its own module so that it is built with the dependency
// versions etcd itself was released with, not the ones Kubernetes selects.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
