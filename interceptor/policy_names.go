package interceptor

import (
	"fmt"
	"strings"
)

// UnknownNameError is returned by New for a configured policy (WithPolicy)
// or an open service (WithInsecureOpenService) that names no service or
// method of the registry: a typo would otherwise protect nothing while the
// method meant keeps a weaker policy.
type UnknownNameError struct {
	// Option is the option that named it ("WithPolicy").
	Option string
	// Name is the name as configured.
	Name string
	// Kind is "service" or "method".
	Kind string
	// Closest is the registry's nearest name by edit distance, "" when the
	// registry has none of that kind.
	Closest string
}

func (e *UnknownNameError) Error() string {
	msg := fmt.Sprintf("interceptor: %s(%q): no such %s in the registry (WithFiles)", e.Option, e.Name, e.Kind)
	if e.Closest != "" {
		msg += fmt.Sprintf("; did you mean %q?", e.Closest)
	}
	return msg
}

// closest returns the name of known nearest to name by edit distance
// (case-insensitive), "" when known is empty.
func closest(name string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
