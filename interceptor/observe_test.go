package interceptor_test

import (
	"context"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stepupgrpc/stepup/interceptor"
)

// TestObservationFollowsTheChecks checks what the Guard records around
// its checks, for a call stopped at each stage and for an allowed one: a
// stage's time is set exactly when the stage ran, a stage's span exists
// exactly then and is marked failed with the reason only when that stage
// refused; the event's time and latency come from the Guard's clock (a
// test clock that does not move gives latency 0), the stage times from the
// monotonic clock (non-zero under the same test clock).
func TestObservationFollowsTheChecks(t *testing.T) {
	const (
		token = 1 << iota // the stages that run
		proof
		stepUp
	)
	cases := []struct {
		name   string
		ctx    func(t *testing.T, e *env) context.Context
		method string
		ran    int
		failed string // the stage span that failed, "" when none
		reason interceptor.Reason
	}{
		{"no credentials", func(*testing.T, *env) context.Context { return context.Background() },
			mPlain, 0, "", interceptor.ReasonTokenMissing},
		{"a token the verifier refuses", func(*testing.T, *env) context.Context {
			return withCreds(context.Background(), "authorization", "DPoP e30.e30.c2ln")
		}, mPlain, token, interceptor.SpanToken, "TOKEN_BAD_ALG"},
		{"a proof for another method", func(t *testing.T, e *env) context.Context {
			return withCreds(context.Background(), atkAlice(e).creds(t, mReusable)...)
		}, mPlain, token | proof, interceptor.SpanProof, "DPOP_BAD_HTU"},
		{"step-up required", func(t *testing.T, e *env) context.Context { return atkAlice(e).ctx(t, mSensitive) },
			mSensitive, token | proof | stepUp, interceptor.SpanStepUp, interceptor.ReasonStepUpRequired},
		{"allowed", func(t *testing.T, e *env) context.Context { return atkAlice(e).ctx(t, mPlain) },
			mPlain, token | proof, "", interceptor.ReasonAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			e := newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithTracerProvider(tp)}})
			_ = atkDo(c.ctx(t, e), e, c.method)

			ev := e.audit.last(t)
			if ev.Reason != c.reason {
				t.Fatalf("reason %s, want %s (%s)", ev.Reason, c.reason, ev.Detail)
			}
			if !ev.Time.Equal(e.clock.Now()) || ev.Latency != 0 {
				t.Errorf("time %v, latency %v: want the Guard's clock (%v) and latency 0 under a clock that does not move",
					ev.Time, ev.Latency, e.clock.Now())
			}
			spans := map[string]tracetest.SpanStub{}
			for _, s := range exp.GetSpans() {
				spans[s.Name] = s
			}
			if _, ok := spans[interceptor.SpanCheck]; !ok {
				t.Error("no check span")
			}
			for _, st := range []struct {
				bit  int
				name string
				took interface{ Nanoseconds() int64 }
			}{
				{token, interceptor.SpanToken, ev.TokenTime},
				{proof, interceptor.SpanProof, ev.ProofTime},
				{stepUp, interceptor.SpanStepUp, ev.StepUpTime},
			} {
				ran := c.ran&st.bit != 0
				if (st.took.Nanoseconds() > 0) != ran {
					t.Errorf("%s: time %dns, want it set only when the stage ran (%v)", st.name, st.took.Nanoseconds(), ran)
				}
				span, ok := spans[st.name]
				if ok != ran {
					t.Errorf("%s: span present %v, want %v", st.name, ok, ran)
					continue
				}
				if !ran {
					continue
				}
				failed := span.Status.Code == otelcodes.Error
				if failed != (st.name == c.failed) {
					t.Errorf("%s: span status %v, want failed only for the refusing stage (%q)", st.name, span.Status, c.failed)
				}
				if failed && span.Status.Description != string(c.reason) {
					t.Errorf("%s: span failed with %q, want %s", st.name, span.Status.Description, c.reason)
				}
			}
		})
	}
}
