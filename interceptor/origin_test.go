package interceptor_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// TestEventOrigin checks that the Guard's events name the call's origin:
// the client's user agent, the trace id of the RPC's span (the otelgrpc
// stats handler's, which the Guard's own span shares), and whether the
// method's policy requires step-up, on the challenge, the passed step-up
// and a call without step-up alike.
func TestEventOrigin(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	rec := &interceptor.AuditRecorder{}
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithTracerProvider(tp), interceptor.WithAuditSink(rec)},
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))))
	if _, err := w.Relay.Whoami(context.Background(), &relayv1.WhoamiRequest{}); err != nil { // challenged, then answered
		t.Fatal(err)
	}
	if _, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{} // trace ids of the Guard's spans
	for _, s := range exp.GetSpans() {
		if s.Name == interceptor.SpanCheck {
			checks[s.SpanContext.TraceID().String()] = true
		}
	}
	evs := rec.Events()
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3 (challenge, step_up_passed, allow)", len(evs))
	}
	seen := map[string]bool{}
	for i, ev := range evs {
		if !strings.HasPrefix(ev.UserAgent, "grpc-go/") {
			t.Errorf("event %d: user agent %q, want grpc-go's", i, ev.UserAgent)
		}
		if len(ev.TraceID) != 32 || !checks[ev.TraceID] {
			t.Errorf("event %d: trace id %q is not one of the Guard's spans' %v", i, ev.TraceID, checks)
		}
		if seen[ev.TraceID] {
			t.Errorf("event %d: trace id %s shared with another call", i, ev.TraceID)
		}
		seen[ev.TraceID] = true
		wantStepUp := ev.Method == "/relay.v1.RelayService/Whoami"
		if ev.StepUpRequired != wantStepUp {
			t.Errorf("event %d (%s %s): StepUpRequired %v", i, ev.Method, ev.Decision, ev.StepUpRequired)
		}
	}
	if evs[0].Decision != interceptor.DecisionChallenge || evs[1].Decision != interceptor.DecisionStepUpPassed {
		t.Errorf("decisions %s, %s", evs[0].Decision, evs[1].Decision)
	}
}

// TestSetOrigin checks SetOrigin on the contexts a gRPC server gives: the
// peer, the user agent, and, without a span, the trace id of a well-formed
// traceparent header only.
func TestSetOrigin(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, c := range []struct {
		name, traceparent, want string
	}{
		{"version 00", "00-" + id + "-00f067aa0ba902b7-01", id},
		{"a later version with more fields", "cc-" + id + "-00f067aa0ba902b7-01-what-comes-next", id},
		{"version 00 with more fields", "00-" + id + "-00f067aa0ba902b7-01-x", ""},
		{"a later version, run on", "cc-" + id + "-00f067aa0ba902b7-01x", ""},
		{"version ff", "ff-" + id + "-00f067aa0ba902b7-01", ""},
		{"upper-case hex", "00-" + strings.ToUpper(id) + "-00f067aa0ba902b7-01", ""},
		{"all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"short", "00-" + id[:31] + "-00f067aa0ba902b7-01", ""},
		{"no separators", "00" + id + "00f067aa0ba902b7001", ""},
		{"not hex", "00-" + id[:31] + "g-00f067aa0ba902b7-01", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			md := metadata.Pairs("user-agent", "bank-app/2.1 grpc-go/1.85.0", "traceparent", c.traceparent)
			ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), md),
				&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 50123}})
			var ev interceptor.Event
			ev.SetOrigin(ctx)
			if ev.TraceID != c.want {
				t.Errorf("trace id %q, want %q", ev.TraceID, c.want)
			}
			if ev.Peer != "192.0.2.7:50123" || ev.UserAgent != "bank-app/2.1 grpc-go/1.85.0" {
				t.Errorf("peer %q, user agent %q", ev.Peer, ev.UserAgent)
			}
		})
	}
	var ev interceptor.Event
	ev.SetOrigin(context.Background())
	if ev != (interceptor.Event{}) {
		t.Errorf("an empty context gave %+v", ev)
	}
}
