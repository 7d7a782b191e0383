// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status,
// the library Flux's kustomize-controller and `kpt live status` use) computes for
// Kubernetes objects.
//
//	kubectl get qlikautomations -o json | kstatus
//	kstatus < object.yaml
//
// stdin holds one object, several YAML documents, or a list (`kind: List`), as
// JSON or YAML. One line per object: `<namespace>/<name> <Status> <message>`.
// Exits 1 when an object cannot be read or status.Compute fails for one.
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"qlik-automations-operator/tests/health/internal/objects"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.{json,yaml}")
		os.Exit(2)
	}
	objs, err := objects.Read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(1)
	}
	failed := false
	for _, u := range objs {
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", objects.Key(u), err)
			failed = true
			continue
		}
		line := fmt.Sprintf("%s %s %s", objects.Key(u), res.Status, oneLine(res.Message))
		fmt.Println(strings.TrimRight(line, " "))
	}
	if failed {
		os.Exit(1)
	}
}

// oneLine keeps the output one line per object.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
