package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepupgrpc/stepup/metrics"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: New reports every option mistake, joined, each
// naming its option, and registers nothing. A nil option or registry is a
// mistake, and so are buckets out of order (prometheus panicked on them
// before).
func TestOptionMistakesJoined(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := metrics.New(reg, metrics.WithFiles(nil), nil, metrics.WithBuckets([]float64{1, 0.5}), metrics.WithBuckets(nil))
	testkit.WantMistakes(t, "New", err,
		"metrics: WithFiles: nil registry",
		"metrics: New: option 2 is nil",
		"metrics: WithBuckets: [1 0.5] is not in increasing order",
		"metrics: WithBuckets: no bucket")
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("New registered %d metric families although its options were wrong (%v)", len(mfs), err)
	}
	if _, err := metrics.New(nil); err == nil || !strings.Contains(err.Error(), "nil registerer") {
		t.Errorf("New(nil) = %v, want the nil registerer refused", err)
	}
}
