package main

import (
	"fmt"
	"os"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// requirement: `metric` must carry `label`.
type requirement struct{ metric, label string }

// selectorName is the exact metric name a selector selects, or "".
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// metricsUnder lists, sorted and once each, the exact metric names of node's vector
// selectors.
func metricsUnder(node parser.Node) []string {
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if name := selectorName(vs); name != "" {
				names = append(names, name)
			}
		}
		return nil
	})
	return unique(names)
}

// selectedMetrics is metricsUnder, noting on stderr every selector that matches metric
// names by anything but equality (those names are not listed).
func selectedMetrics(node parser.Node, where string) []string {
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || selectorName(vs) != "" {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				fmt.Fprintf(os.Stderr, "note %s: %s matches metric names by %s; not listed\n", where, vs, m)
			}
		}
		return nil
	})
	return metricsUnder(node)
}

// required: the labels selectors match on, and the labels grouping and matching clauses
// name, for every metric beneath them.
func required(node parser.Node) []requirement {
	var out []requirement
	all := func(under parser.Node, names []string) {
		for _, m := range metricsUnder(under) {
			for _, l := range names {
				out = append(out, requirement{m, l})
			}
		}
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if name := selectorName(n); name != "" {
				for _, m := range n.LabelMatchers {
					if m.Name != labels.MetricName {
						out = append(out, requirement{name, m.Name})
					}
				}
			}
		case *parser.AggregateExpr:
			all(n.Expr, n.Grouping)
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && n.LHS.Type() == parser.ValueTypeVector && n.RHS.Type() == parser.ValueTypeVector {
				all(n.LHS, vm.MatchingLabels)
				all(n.RHS, vm.MatchingLabels)
				switch vm.Card {
				case parser.CardManyToOne:
					all(n.RHS, vm.Include)
				case parser.CardOneToMany:
					all(n.LHS, vm.Include)
				}
			}
		case *parser.Call:
			if n.Func.Name == "histogram_quantile" && len(n.Args) == 2 {
				all(n.Args[1], []string{"le"})
			}
		}
		return nil
	})
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// provides tells whether node's result series carry label, and if so which metrics'
// series it comes from (each of them must carry it).
func provides(node parser.Node, label string) ([]requirement, bool) {
	switch n := node.(type) {
	case *parser.VectorSelector:
		name := selectorName(n)
		if name == "" {
			return nil, false
		}
		return []requirement{{name, label}}, true
	case *parser.MatrixSelector:
		return provides(n.VectorSelector, label)
	case *parser.ParenExpr:
		return provides(n.Expr, label)
	case *parser.SubqueryExpr:
		return provides(n.Expr, label)
	case *parser.StepInvariantExpr:
		return provides(n.Expr, label)
	case *parser.UnaryExpr:
		return provides(n.Expr, label)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return nil, false
	case *parser.AggregateExpr:
		switch n.Op {
		case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
			return provides(n.Expr, label)
		case parser.COUNT_VALUES:
			if s, ok := n.Param.(*parser.StringLiteral); ok && s.Val == label {
				return nil, true
			}
		}
		if n.Without {
			if contains(n.Grouping, label) {
				return nil, false
			}
			return provides(n.Expr, label)
		}
		// by (...): required() already asks every metric beneath for the grouping labels.
		return nil, contains(n.Grouping, label)
	case *parser.Call:
		switch n.Func.Name {
		case "absent", "absent_over_time":
			var vs *parser.VectorSelector
			switch a := n.Args[0].(type) {
			case *parser.VectorSelector:
				vs = a
			case *parser.MatrixSelector:
				vs, _ = a.VectorSelector.(*parser.VectorSelector)
			}
			if vs != nil {
				for _, m := range vs.LabelMatchers {
					if m.Name == label && m.Type == labels.MatchEqual {
						return nil, true
					}
				}
			}
			return nil, false
		case "histogram_quantile":
			if label == "le" {
				return nil, false
			}
			return provides(n.Args[1], label)
		case "label_replace", "label_join":
			if s, ok := n.Args[1].(*parser.StringLiteral); ok && s.Val == label {
				return nil, true
			}
			return provides(n.Args[0], label)
		}
		for _, a := range n.Args {
			if a.Type() == parser.ValueTypeVector || a.Type() == parser.ValueTypeMatrix {
				return provides(a, label)
			}
		}
		return nil, false
	case *parser.BinaryExpr:
		lv := n.LHS.Type() == parser.ValueTypeVector
		rv := n.RHS.Type() == parser.ValueTypeVector
		switch {
		case lv && !rv:
			return provides(n.LHS, label)
		case rv && !lv:
			return provides(n.RHS, label)
		case !lv && !rv:
			return nil, false
		}
		vm := n.VectorMatching
		switch n.Op {
		case parser.LAND, parser.LUNLESS:
			return provides(n.LHS, label)
		case parser.LOR:
			l, lok := provides(n.LHS, label)
			r, rok := provides(n.RHS, label)
			return append(l, r...), lok && rok
		}
		switch {
		case vm == nil || vm.Card == parser.CardOneToOne:
			if vm != nil && vm.On && !contains(vm.MatchingLabels, label) {
				return nil, false
			}
			if vm != nil && !vm.On && contains(vm.MatchingLabels, label) {
				return nil, false
			}
			return provides(n.LHS, label)
		case vm.Card == parser.CardManyToOne:
			if contains(vm.Include, label) {
				return provides(n.RHS, label)
			}
			return provides(n.LHS, label)
		case vm.Card == parser.CardOneToMany:
			if contains(vm.Include, label) {
				return provides(n.LHS, label)
			}
			return provides(n.RHS, label)
		}
	}
	return nil, false
}
