package interceptor_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/relaykit"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
)

// TestTokenRevocation: RevokeTokens stops a token on the next call, while
// the verified-token cache still holds it; without WithTokenRevocation the
// token keeps working until it expires.
func TestTokenRevocation(t *testing.T) {
	audit := &interceptor.AuditRecorder{}
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithTokenRevocation(), interceptor.WithAuditSink(audit)})
	if _, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err) // the token is now in the cache
	}
	if err := w.StepUp.RevokeTokens(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{})
	if status.Code(err) != codes.Unauthenticated || interceptor.ReasonFromError(err) != interceptor.WireInvalidToken {
		t.Fatalf("a revoked token: %v", err)
	}
	if ev, _ := audit.Last(); ev.Reason != interceptor.ReasonTokenRevoked || ev.Subject != "alice" {
		t.Errorf("audit %+v", ev)
	}

	plain := relaykit.Start(t, []interceptor.Option{interceptor.WithAuditSink(audit)})
	_ = plain.StepUp.RevokeTokens(context.Background(), "alice")
	if _, err := plain.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Errorf("without WithTokenRevocation: %v", err)
	}
	if _, err := interceptor.New(interceptor.WithTokenRevocation()); err == nil {
		t.Error("WithTokenRevocation without a step-up service accepted")
	}
}

// BenchmarkTokenRevocation: the same DPoP call with and without the
// per-call revocation check (in-process store), alternated in one loop.
func BenchmarkTokenRevocation(b *testing.B) {
	discard := interceptor.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {}))
	on := relaykit.Start(b, []interceptor.Option{interceptor.WithTokenRevocation(), discard})
	off := relaykit.Start(b, []interceptor.Option{discard})
	ctx := context.Background()
	req := &relayv1.EchoRequest{}
	for _, w := range []*relaykit.World{on, off} {
		if _, err := w.Relay.Echo(ctx, req); err != nil {
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
		if _, err := first.Relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := second.Relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		*tf += t1.Sub(t0)
		*ts += time.Since(t1)
	}
	b.ReportMetric(float64(tOn)/float64(tOff), "revocation/none")
}
