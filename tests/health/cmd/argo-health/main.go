// Command argo-health runs Argo CD resource health scripts (health.lua) the way
// Argo CD does, without Argo CD.
//
//	argo-health run [-open-libs] SCRIPT.lua < object.{json,yaml}
//	    prints `<status>\t<message>` for one object. Without -open-libs the
//	    script gets what an argocd-cm `resource.customizations.health.*` script
//	    gets by default (package, base, table, safe os); with it, what a
//	    built-in resource_customizations script gets (all of gopher-lua's
//	    standard libraries).
//
//	argo-health test DIR...
//	    for each DIR in Argo CD's resource_customizations layout (health.lua,
//	    health_test.yaml, testdata/), checks every case of health_test.yaml
//	    like Argo CD's TestLuaHealthScript (util/lua/health_test.go), in both
//	    library modes, and that every testdata/*.yaml is used by a case. Lists
//	    every mismatch and exits 1 if there is one.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"

	"qlik-automations-operator/tests/health/internal/objects"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  argo-health run [-open-libs] SCRIPT.lua < object.{json,yaml}
  argo-health test DIR...
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		os.Exit(run(os.Args[2:]))
	case "test":
		os.Exit(test(os.Args[2:]))
	default:
		usage()
	}
}

func run(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	openLibs := fs.Bool("open-libs", false, "open all of gopher-lua's standard libraries, as for Argo CD's built-in scripts")
	fs.Usage = usage
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	script, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "argo-health:", err)
		return 1
	}
	obj, err := objects.ReadOne(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argo-health: reading stdin:", err)
		return 1
	}
	hs, err := runHealth(string(script), obj.Object, *openLibs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "argo-health: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	fmt.Printf("%s\t%s\n", hs.Status, hs.Message)
	return 0
}

// The format of health_test.yaml (argo-cd util/lua/health_test.go).
type testFile struct {
	Tests []testCase `json:"tests"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

var libModes = []struct {
	openLibs bool
	name     string
}{
	{true, "built-in (open libs)"},
	{false, "argocd-cm (no open libs)"},
}

func test(dirs []string) int {
	if len(dirs) == 0 {
		usage()
	}
	var failures []string
	cases := 0
	for _, dir := range dirs {
		n, f := testDir(dir)
		cases += n
		failures = append(failures, f...)
	}
	for _, f := range failures {
		fmt.Println("FAIL", f)
	}
	fmt.Printf("%d cases in %d dirs, %d failures\n", cases, len(dirs), len(failures))
	if len(failures) > 0 {
		return 1
	}
	return 0
}

func testDir(dir string) (int, []string) {
	var failures []string
	fail := func(format string, args ...any) {
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		fail("%v", err)
		return 0, failures
	}
	testYAML, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		fail("%v", err)
		return 0, failures
	}
	var tf testFile
	if err := yaml.UnmarshalStrict(testYAML, &tf); err != nil {
		fail("%s: %v", filepath.Join(dir, "health_test.yaml"), err)
		return 0, failures
	}
	if len(tf.Tests) == 0 {
		fail("%s: no tests", filepath.Join(dir, "health_test.yaml"))
	}

	used := map[string]bool{}
	for _, tc := range tf.Tests {
		name := filepath.Join(dir, tc.InputPath)
		used[filepath.Clean(name)] = true
		input, err := os.ReadFile(name)
		if err != nil {
			fail("%v", err)
			continue
		}
		// As Argo CD's test reads its fixtures (parseObj): sigs.k8s.io/yaml
		// into a map.
		obj := map[string]any{}
		if err := yaml.Unmarshal(input, &obj); err != nil {
			fail("%s: %v", name, err)
			continue
		}
		for _, mode := range libModes {
			got, err := runHealth(string(script), obj, mode.openLibs)
			switch {
			case err != nil:
				fail("%s [%s]: %v", name, mode.name, err)
			case got != tc.HealthStatus:
				fail("%s [%s]:\n       got:  %s %q\n       want: %s %q", name, mode.name,
					got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
		}
		fmt.Printf("ran  %s: want %s %q\n", name, tc.HealthStatus.Status, tc.HealthStatus.Message)
	}

	fixtures, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
	sort.Strings(fixtures)
	for _, f := range fixtures {
		if !used[filepath.Clean(f)] {
			fail("%s: not used by any case in health_test.yaml", f)
		}
	}
	return len(tf.Tests), failures
}
