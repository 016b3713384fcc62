package interceptor_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/cputime"

	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
)

// BenchmarkStreamMessage measures what bounding a stream by its
// credentials costs each message: one round trip (Send then Recv) on a bidi
// stream opened through the Guard (its life armed: token expiry and the
// re-check timer), alternated in one loop with a round trip on the same
// stream kind served without any interceptor, over bufconn. Reports both and
// their ratio, guarded/bare (goal: indistinguishable from 1), and the ratio
// of the process CPU time the two kinds of round trip took
// (cpu-guarded/bare).
func BenchmarkStreamMessage(b *testing.B) {
	e := newEnv(b, envOpts{guardOpts: []interceptor.Option{discardAudit()}})
	guarded, err := e.client(e.boundToken(tokenOpts{})).Chat(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	policytestv1.RegisterGuardedServiceServer(srv, &testServer{})
	h := &env{t: b}
	h.serve(srv, false)
	bare, err := policytestv1.NewGuardedServiceClient(h.conn()).Chat(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	msg := &policytestv1.PlainRequest{Text: "m"}
	round := func(s grpc.BidiStreamingClient[policytestv1.PlainRequest, policytestv1.PlainResponse]) {
		if err := s.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	round(guarded) // opens both streams
	round(bare)
	var tGuarded, tBare, cGuarded, cBare time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0, c0 := time.Now(), cputime.Process()
		round(guarded)
		t1, c1 := time.Now(), cputime.Process()
		round(bare)
		tGuarded += t1.Sub(t0)
		tBare += time.Since(t1)
		cGuarded += c1 - c0
		cBare += cputime.Process() - c1
	}
	b.ReportMetric(float64(tGuarded.Nanoseconds())/float64(b.N), "guarded-ns/msg")
	b.ReportMetric(float64(tBare.Nanoseconds())/float64(b.N), "bare-ns/msg")
	b.ReportMetric(float64(tGuarded)/float64(tBare), "guarded/bare")
	if cputime.Available {
		// The process's CPU time (client and server) is what the round
		// trips used, whatever else the machine runs: on a shared machine
		// the wall-time ratio mostly measures the neighbours.
		b.ReportMetric(float64(cGuarded.Nanoseconds())/float64(b.N), "cpu-guarded-ns/msg")
		b.ReportMetric(float64(cBare.Nanoseconds())/float64(b.N), "cpu-bare-ns/msg")
		b.ReportMetric(float64(cGuarded)/float64(cBare), "cpu-guarded/bare")
	}
}
