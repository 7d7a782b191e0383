// Command promql-check parses the PromQL of alerting/recording rules and Grafana
// dashboards with Prometheus's own parser and lists the metrics they select and the
// labels they need each metric to carry, for a test to look up in a live /metrics
// scrape.
//
//	promql-check [-metrics] [-labels] FILE...
//
// Each FILE holds Kubernetes-style objects (read with internal/objects: YAML or JSON,
// one document or several, a single object or a list):
//   - a Prometheus Operator PrometheusRule (kind: PrometheusRule): spec.groups is first
//     validated as `promtool check rules` validates a rule file (rulefmt.Parse: known
//     fields, names, durations, expressions, and annotation and label templates that
//     parse), then every spec.groups[].rules[].expr is read with the labels its
//     annotations and labels name ({{ $labels.x }}, .Labels.x, index $labels "x");
//   - anything else, e.g. a Grafana dashboard: every targets[].expr at any depth with
//     the labels its legendFormat names ({{x}}), and the templating variables'
//     label_values(<selector>, <label>) and query_result(<expr>) queries.
//
// Grafana's interval variables ($__rate_interval, $__interval, $__range and their
// ${...} forms; $__interval_ms, $__range_ms, $__range_s) are replaced by 5m (300000,
// 300) before parsing, and so is any other variable ($var, ${var}, [[var]]) used
// inside [...] outside a string. Variables inside label matcher strings need nothing.
//
// stdout, each kind sorted, once each:
//   - with -metrics (the default when -labels is not given): `metric <name>` for every
//     metric name the expressions select by an exact name (`foo{...}` or
//     `{__name__="foo"}`). Names matched by a regex are noted on stderr, not listed.
//   - with -labels: `label <metric> <label>` for every label that a selector of
//     <metric> matches on (`m{tier="tier2"}`); that a by, without, on, ignoring,
//     group_left or group_right clause names, for every metric selected beneath it
//     (histogram_quantile's `le` on the _bucket series included); that a legend or an
//     alert template names, where it comes from <metric>'s series (a label a by (...)
//     clause keeps is checked there); and that label_values(<selector>, <label>) names.
//
// stderr: one `FAIL` line per file that cannot be read or has no expression, per
// PrometheusRule that `promtool check rules` would refuse, per expression that does
// not parse, and per legend or template label its expression's result cannot carry
// (one a by (...) clause drops); then a summary. Exits 1 on any failure, whatever
// -metrics and -labels select.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	printMetrics := flag.Bool("metrics", false, "print 'metric <name>' lines (the default when -labels is not given)")
	printLabels := flag.Bool("labels", false, "print 'label <metric> <label>' lines")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: promql-check [-metrics] [-labels] FILE...   (PrometheusRule YAML or Grafana dashboard JSON)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if !*printLabels {
		*printMetrics = true
	}

	p := parser.NewParser(parser.Options{}) // what a default Prometheus server accepts
	metrics := map[string]bool{}
	reqs := map[requirement]bool{}
	failures, total := 0, 0
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "FAIL "+format+"\n", args...)
		failures++
	}
	for _, file := range flag.Args() {
		queries, err := readFile(file)
		if err != nil {
			fail("%v", err) // it names file
			continue
		}
		if len(queries) == 0 {
			fail("%s: no PrometheusRule rule expr, targets[].expr or query variable found", file)
			continue
		}
		for _, q := range queries {
			total++
			node, err := p.ParseExpr(substituteGrafanaVariables(q.expr))
			if err != nil {
				fail("%s: %q: %v", q.where, q.expr, err)
				continue
			}
			for _, name := range selectedMetrics(node, q.where) {
				metrics[name] = true
			}
			for _, r := range required(node) {
				reqs[r] = true
			}
			for _, label := range q.extra {
				for _, m := range metricsUnder(node) {
					reqs[requirement{m, label}] = true
				}
			}
			for _, label := range q.refs {
				from, ok := provides(node, label)
				if !ok {
					fail("%s: %q names label %q, which the expression's result does not carry", q.where, q.expr, label)
					continue
				}
				for _, r := range from {
					reqs[r] = true
				}
			}
		}
	}

	names := make([]string, 0, len(metrics))
	for name := range metrics {
		names = append(names, name)
	}
	sort.Strings(names)
	list := make([]requirement, 0, len(reqs))
	for r := range reqs {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].metric != list[j].metric {
			return list[i].metric < list[j].metric
		}
		return list[i].label < list[j].label
	})
	if *printMetrics {
		for _, name := range names {
			fmt.Println("metric", name)
		}
	}
	if *printLabels {
		for _, r := range list {
			fmt.Println("label", r.metric, r.label)
		}
	}
	fmt.Fprintf(os.Stderr, "promql-check: %d expressions in %d files, %d failures, %d metrics, %d metric labels\n",
		total, flag.NArg(), failures, len(names), len(list))
	if failures > 0 {
		os.Exit(1)
	}
}
