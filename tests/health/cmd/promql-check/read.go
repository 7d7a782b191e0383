package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"qlik-automations-operator/tests/health/internal/objects"
)

// query is one PromQL expression, where it was found, and the labels its result must
// carry.
type query struct {
	where string
	expr  string
	// refs are the labels a legend or an alert template names: the result must carry them.
	refs []string
	// extra are the labels a label_values(...) query asks of every metric its selector
	// selects.
	extra []string
}

var (
	legendRef    = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
	templateRefs = []*regexp.Regexp{
		regexp.MustCompile(`\$labels\.([A-Za-z_][A-Za-z0-9_]*)`),
		regexp.MustCompile(`\.Labels\.([A-Za-z_][A-Za-z0-9_]*)`),
		regexp.MustCompile(`index\s+\$labels\s+"([A-Za-z_][A-Za-z0-9_]*)"`),
	}
	labelValues = regexp.MustCompile(`(?s)^\s*label_values\s*\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)
	queryResult = regexp.MustCompile(`(?s)^\s*query_result\s*\((.*)\)\s*$`)
)

// readFile reads the objects in path and returns their queries. A PrometheusRule that
// `promtool check rules` would refuse is an error. Every error names path.
func readFile(path string) ([]query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := objects.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []query
	for i, obj := range objs {
		where := path
		if len(objs) > 1 {
			where = fmt.Sprintf("%s (object %d)", path, i+1)
		}
		if obj.GetKind() == "PrometheusRule" {
			if err := validateRules(obj.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			queries, err := ruleQueries(where, obj.Object)
			if err != nil {
				return nil, err
			}
			out = append(out, queries...)
			continue
		}
		out = append(out, targetQueries(where, obj.Object, "")...)
		out = append(out, variableQueries(where, obj.Object)...)
	}
	return out, nil
}

// validateRules checks spec.groups the way `promtool check rules` checks a rule file
// (rulefmt.Parse: known fields only, valid names, durations and expressions, and
// annotation and label templates that parse).
func validateRules(rule map[string]any) error {
	spec, _ := rule["spec"].(map[string]any)
	content, err := json.Marshal(map[string]any{"groups": spec["groups"]})
	if err != nil {
		return err
	}
	_, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	return errors.Join(errs...)
}

// ruleQueries: spec.groups[].rules[].expr of a PrometheusRule, with the labels each
// rule's annotations and labels name.
func ruleQueries(where string, rule map[string]any) ([]query, error) {
	spec, _ := rule["spec"].(map[string]any)
	groups, _ := spec["groups"].([]any)
	var out []query
	for gi, g := range groups {
		group, _ := g.(map[string]any)
		gname, _ := group["name"].(string)
		rules, _ := group["rules"].([]any)
		for ri, r := range rules {
			rule, _ := r.(map[string]any)
			name := fmt.Sprintf("rules[%d]", ri)
			if s, ok := rule["alert"].(string); ok {
				name = "alert " + s
			} else if s, ok := rule["record"].(string); ok {
				name = "record " + s
			}
			at := fmt.Sprintf("%s: group %q (groups[%d]) %s", where, gname, gi, name)
			var expr string
			switch e := rule["expr"].(type) {
			case string:
				expr = e
			case int64, float64, bool:
				expr = fmt.Sprint(e)
			default:
				return nil, fmt.Errorf("%s: no expr", at)
			}
			var refs []string
			for _, key := range []string{"annotations", "labels"} {
				m, _ := rule[key].(map[string]any)
				for _, v := range m {
					s, _ := v.(string)
					for _, re := range templateRefs {
						for _, match := range re.FindAllStringSubmatch(s, -1) {
							refs = append(refs, match[1])
						}
					}
				}
			}
			out = append(out, query{where: at, expr: expr, refs: unique(refs)})
		}
	}
	return out, nil
}

// targetQueries: every targets[].expr at any depth (templating aside), with the labels
// its legendFormat names, named by the nearest enclosing title (a Grafana panel's).
func targetQueries(where string, v any, title string) []query {
	var out []query
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["title"].(string); ok {
			title = t
		}
		if targets, ok := v["targets"].([]any); ok {
			for i, t := range targets {
				target, _ := t.(map[string]any)
				expr, _ := target["expr"].(string)
				if strings.TrimSpace(expr) == "" {
					continue // another data source's target, or an empty query
				}
				legend, _ := target["legendFormat"].(string)
				var refs []string
				for _, match := range legendRef.FindAllStringSubmatch(legend, -1) {
					refs = append(refs, match[1])
				}
				ref, _ := target["refId"].(string)
				out = append(out, query{
					where: fmt.Sprintf("%s: panel %q targets[%d] (refId %s)", where, title, i, ref),
					expr:  expr,
					refs:  unique(refs),
				})
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // a stable order for the report
		for _, k := range keys {
			if k != "targets" && k != "templating" {
				out = append(out, targetQueries(where, v[k], title)...)
			}
		}
	case []any:
		for _, item := range v {
			out = append(out, targetQueries(where, item, title)...)
		}
	}
	return out
}

// variableQueries: the query variables of a dashboard's templating.list.
func variableQueries(where string, dashboard map[string]any) []query {
	templating, _ := dashboard["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	var out []query
	for _, item := range list {
		variable, _ := item.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		name, _ := variable["name"].(string)
		q, _ := variable["query"].(string)
		if m, ok := variable["query"].(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		at := fmt.Sprintf("%s: variable %q", where, name)
		if m := labelValues.FindStringSubmatch(q); m != nil {
			out = append(out, query{where: at, expr: m[1], extra: []string{m[2]}})
		} else if m := queryResult.FindStringSubmatch(q); m != nil {
			out = append(out, query{where: at, expr: m[1]})
		} else {
			fmt.Fprintf(os.Stderr, "note %s: query %q is neither label_values(<selector>, <label>) nor query_result(...); not checked\n", at, q)
		}
	}
	return out
}

// unique sorts in and drops repeats.
func unique(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
