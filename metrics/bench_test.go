package metrics_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/stepupgrpc/stepup/interceptor"

	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
)

// BenchmarkGuardMetrics measures what the metrics sink, and tracing with
// the OpenTelemetry SDK (spans recorded, none exported), add to a DPoP call
// through the Guard: the same call on two servers (bufconn), one whose
// Guard has both and one with neither (its sink discards), alternated in
// one loop. Reports ns/call of each and their ratio (goal ≤ 1.03).
func BenchmarkGuardMetrics(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	on, off := newWorldSink(b, true, interceptor.WithTracerProvider(tp)), newWorldSink(b, false)
	ctx := context.Background()
	req := &relayv1.EchoRequest{Payload: []byte("ping")}
	for _, w := range []*world{on, off} {
		if _, err := w.relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	var tOn, tOff time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first, second, tf, ts := on, off, &tOn, &tOff
		if i%2 == 1 {
			first, second, tf, ts = off, on, &tOff, &tOn
		}
		t0 := time.Now()
		if _, err := first.relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := second.relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		*tf += t1.Sub(t0)
		*ts += time.Since(t1)
	}
	b.ReportMetric(float64(tOn.Nanoseconds())/float64(b.N), "observed-ns/call")
	b.ReportMetric(float64(tOff.Nanoseconds())/float64(b.N), "none-ns/call")
	b.ReportMetric(float64(tOn)/float64(tOff), "observed/none")
}
