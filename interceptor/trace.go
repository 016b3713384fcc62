package interceptor

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
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

// startCheck starts the decision's span, when tracing is on; ctx is then
// the span's context, for the stages only (the handler keeps the RPC's).
func (g *Guard) startCheck(ctx context.Context, method string, stream bool) (context.Context, trace.Span) {
	if g.cfg.tracer == nil {
		return ctx, nil
	}
	return g.cfg.tracer.Start(ctx, SpanCheck, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrMethod.String(method), AttrStream.Bool(stream)))
}

// endCheck records the decision on the span and ends it.
func endCheck(span trace.Span, ev *Event, p *EffectivePolicy) {
	if span == nil {
		return
	}
	attrs := []attribute.KeyValue{
		AttrDecision.String(string(ev.Decision)), AttrReason.String(string(ev.Reason)), AttrCode.Int(int(ev.Code)),
	}
	if p != nil {
		attrs = append(attrs, AttrPolicy.String(p.String()))
	}
	if ev.Factor != "" {
		attrs = append(attrs, AttrFactor.String(ev.Factor))
	}
	if ev.Via != "" {
		attrs = append(attrs, AttrVia.String(ev.Via))
	}
	span.SetAttributes(attrs...)
	switch ev.Decision {
	case DecisionAllow, DecisionStepUpPassed, DecisionShadowDeny:
		span.SetStatus(otelcodes.Ok, "")
	default:
		span.SetStatus(otelcodes.Error, string(ev.Reason))
	}
	span.End()
}

// stage starts a child span of the decision's, when tracing is on.
func (g *Guard) stage(ctx context.Context, name string) (context.Context, trace.Span) {
	if g.cfg.tracer == nil {
		return ctx, nil
	}
	return g.cfg.tracer.Start(ctx, name)
}

// endStage ends a stage's span, marking it failed with reason when the
// stage refused the call.
func endStage(span trace.Span, reason Reason) {
	if span == nil {
		return
	}
	if reason != "" {
		span.SetStatus(otelcodes.Error, string(reason))
		span.SetAttributes(AttrReason.String(string(reason)))
	}
	span.End()
}
