package interceptor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// TestTraces checks the Guard's spans with the SDK's in-memory exporter:
// one SpanCheck per call, a child of the RPC span of the otelgrpc stats
// handler, with the stages as its children, the decision as attributes,
// and no credential anywhere.
func TestTraces(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithTracerProvider(tp), discardAudit()},
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))))

	if _, err := w.Relay.Whoami(context.Background(), &relayv1.WhoamiRequest{}); err != nil { // challenged, then answered
		t.Fatal(err)
	}
	if err := w.Conn.Invoke(context.Background(), "/relay.v1.StatsService/Stats", &relayv1.StatsRequest{}, &relayv1.StatsResponse{}); status.Code(err) != codes.PermissionDenied {
		t.Fatal(err)
	}
	// The RPC's server span ends in the stats handler after the response
	// was sent: wait until the three calls' server spans are exported.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		spans = exp.GetSpans()
		servers := 0
		for _, s := range spans {
			if s.SpanKind.String() == "server" {
				servers++
			}
		}
		if servers >= 3 {
			break
		}
	}
	byID := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID().String()] = s
	}
	var checks []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == interceptor.SpanCheck {
			checks = append(checks, s)
		}
		// No credential in any attribute of any span.
		for _, a := range s.Attributes {
			v := a.Value.Emit()
			if strings.Count(v, ".") == 2 && len(v) > 100 || strings.HasPrefix(v, "DPoP ") || strings.HasPrefix(v, "ey") {
				t.Errorf("span %s attribute %s looks like a credential: %.40s…", s.Name, a.Key, v)
			}
		}
	}
	if len(checks) != 3 {
		t.Fatalf("%d check spans, want 3 (challenge, passed answer, policy missing)", len(checks))
	}
	attr := func(s tracetest.SpanStub, k string) string {
		for _, a := range s.Attributes {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	want := []struct{ decision, reason, factor string }{
		{"challenge", "STEPUP_REQUIRED", ""}, {"step_up_passed", "ALLOWED", "totp"}, {"deny", "POLICY_MISSING", ""},
	}
	for i, c := range checks {
		if attr(c, "stepup.decision") != want[i].decision || attr(c, "stepup.reason") != want[i].reason || attr(c, "stepup.factor") != want[i].factor {
			t.Errorf("check %d: %v", i, c.Attributes)
		}
		parent, ok := byID[c.Parent.SpanID().String()]
		if !ok || parent.SpanKind.String() != "server" {
			t.Errorf("check %d: parent %q (%v), want the RPC's server span", i, parent.Name, parent.SpanKind)
		}
		if (c.Status.Code == otelcodes.Error) != (want[i].decision != "step_up_passed") {
			t.Errorf("check %d: status %v", i, c.Status)
		}
	}
	stages := map[string]int{}
	for _, s := range spans {
		if p, ok := byID[s.Parent.SpanID().String()]; ok && p.Name == interceptor.SpanCheck {
			stages[s.Name]++
		}
	}
	for _, name := range []string{interceptor.SpanToken, interceptor.SpanProof, interceptor.SpanStepUp} {
		if stages[name] != 2 {
			t.Errorf("%d %s spans under the checks, want 2 (%v)", stages[name], name, stages)
		}
	}
}

// TestNoTracerByDefault: without WithTracerProvider the Guard makes no span and pays
// nothing for tracing.
func TestNoTracerByDefault(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	w := relaykit.Start(t, []interceptor.Option{discardAudit()},
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))))
	if _, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "stepup.") {
			t.Errorf("span %s without a tracer provider", s.Name)
		}
	}
}
