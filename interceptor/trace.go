package interceptor

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Span names and attribute keys of the Guard's traces (docs/METRICS.md).
const (
	// SpanCheck is the span of one Guard decision, a child of the RPC's
	// span (the otelgrpc stats handler's, when there is one).
	SpanCheck = "stepup.check"
	// SpanToken, SpanProof and SpanStepUp are its children: the access
	// token's verification, the DPoP proof's (replay insert included), and
	// the step-up check (grant, answer, challenge and their store calls).
	SpanToken  = "stepup.verify_token"
	SpanProof  = "stepup.verify_proof"
	SpanStepUp = "stepup.step_up"

	AttrDecision = attribute.Key("stepup.decision")
	AttrReason   = attribute.Key("stepup.reason")
	AttrMethod   = attribute.Key("rpc.method.full")
	AttrStream   = attribute.Key("stepup.stream")
	AttrPolicy   = attribute.Key("stepup.policy")
	AttrFactor   = attribute.Key("stepup.factor")
	AttrVia      = attribute.Key("stepup.via")
	AttrCode     = attribute.Key("rpc.grpc.status_code")
)

// tracerName is the instrumentation scope of the Guard's spans.
const tracerName = "github.com/stepupgrpc/stepup/interceptor"

// WithTracerProvider makes the Guard trace every decision with tp: a span
// SpanCheck per call, with the decision, reason, method, policy and
// step-up factor as attributes, and child spans for the token, the proof
// and step-up. No attribute ever holds a token, proof, code, answer, grant
// or assertion. Without it (the default) the Guard creates no span and
// pays nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) error {
		if tp != nil {
			c.tracer = tp.Tracer(tracerName)
		}
		return nil
	})
}
