package main

import (
	"regexp"
	"strings"
)

// Grafana's interval variables, and any variable ($var, ${var}, [[var]]).
var (
	grafanaIntervals = regexp.MustCompile(`\$\{?__(interval_ms|range_ms|range_s|rate_interval|interval|range)\b\}?`)
	grafanaVariable  = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\[\]]*\]\]`)
)

// substituteGrafanaVariables makes a dashboard query PromQL: Grafana's interval
// variables become 5m (300000 for the _ms ones, 300 for $__range_s), and so does any
// other variable used inside [...] (a range or subquery) outside a string.
func substituteGrafanaVariables(expr string) string {
	expr = grafanaIntervals.ReplaceAllStringFunc(expr, func(m string) string {
		switch strings.Trim(m, "${}") {
		case "__interval_ms", "__range_ms":
			return "300000"
		case "__range_s":
			return "300"
		default:
			return "5m"
		}
	})
	// Any other variable inside [...] (a range or subquery), outside strings.
	var b strings.Builder
	var quote byte
	depth := 0
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(expr) && quote != '`' {
				b.WriteByte(c)
				i++
				c = expr[i]
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '[' && strings.HasPrefix(expr[i:], "[["):
			if loc := grafanaVariable.FindStringIndex(expr[i:]); loc != nil && loc[0] == 0 && depth > 0 {
				b.WriteString("5m")
				i += loc[1] - 1
				continue
			}
			depth++
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '$' && depth > 0:
			if loc := grafanaVariable.FindStringIndex(expr[i:]); loc != nil && loc[0] == 0 {
				b.WriteString("5m")
				i += loc[1] - 1
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
