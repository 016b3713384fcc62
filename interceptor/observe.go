package interceptor

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
)

// observation is everything the Guard records of one call while deciding
// it: the audit event, the check's span and the stages' spans and times.
// It sits around the checks, as a reporter sits around an interceptor:
// decide runs the checks in their order and tells the observation what
// each one found (tokenVerified, proofVerified, steppedUp); check closes
// it with the decision (refused or allowed) and emits the one audit event
// (audit). No check writes a bookkeeping field itself.
//
// Two clocks, on purpose. Event.Time and Event.Latency come from the
// Guard's clock (WithClock), like every time the audit record holds, so
// that a test clock gives reproducible records (docs/AUDIT.md: latency 0
// with a clock that does not move). The stage times (TokenTime, ProofTime,
// StepUpTime) are for metrics and always use the monotonic clock, whatever
// WithClock says, so that they mean the same in every deployment.
type observation struct {
	ev     Event
	now    func() time.Time // the Guard's clock
	tracer trace.Tracer     // nil: no spans
	span   trace.Span       // the check span, nil without a tracer
}

// observe starts the observation of a call: its event, and its check span
// under WithTracerProvider. The context returned carries the span, for
// the stages' spans.
func (g *Guard) observe(ctx context.Context, method string, stream bool) (context.Context, *observation) {
	o := &observation{now: g.cfg.now, tracer: g.cfg.tracer}
	o.ev = Event{Time: o.now(), Method: method, Stream: stream}
	o.ev.SetOrigin(ctx)
	if o.tracer != nil {
		ctx, o.span = o.tracer.Start(ctx, SpanCheck, trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(AttrMethod.String(method), AttrStream.Bool(stream)))
	}
	return ctx, o
}

// stage is one timed check: its span (nil without a tracer), its start on
// the monotonic clock, and the event field its duration goes to.
type stage struct {
	span  trace.Span
	start time.Time
	took  *time.Duration
}

// stage starts the stage name (SpanToken, SpanProof, SpanStepUp), whose
// duration goes to took, one of the event's stage times.
func (o *observation) stage(ctx context.Context, name string, took *time.Duration) (context.Context, stage) {
	s := stage{start: time.Now(), took: took}
	if o.tracer != nil {
		ctx, s.span = o.tracer.Start(ctx, name)
	}
	return ctx, s
}

// end records the stage's duration and ends its span, marked failed with
// d's reason when the stage refused the call. It returns d.
func (s stage) end(d *denial) *denial {
	*s.took = time.Since(s.start)
	if s.span != nil {
		if d != nil {
			s.span.SetStatus(otelcodes.Error, string(d.reason))
			s.span.SetAttributes(AttrReason.String(string(d.reason)))
		}
		s.span.End()
	}
	return d
}

// unauthenticated records a method without authentication.
func (o *observation) unauthenticated() { o.ev.Reason = ReasonNoAuthentication }

// tokenVerified records who the verified token names.
func (o *observation) tokenVerified(tok *Token) {
	o.ev.Subject, o.ev.TokenID, o.ev.ClientID = tok.Subject, tok.ID, tok.ClientID
}

// proofVerified records the key the verified proof was signed with.
func (o *observation) proofVerified(jkt string) { o.ev.Thumbprint = jkt }

// steppedUp records what the step-up check consulted and issued and, when
// it is satisfied (met, not nil), how.
func (o *observation) steppedUp(out *challenge.Outcome, met *StepUpState) {
	ev := &o.ev
	ev.ChallengeID, ev.GrantID = out.ChallengeID, out.GrantID
	ev.IssuedChallengeID, ev.IssuedGrantID = out.IssuedChallengeID, out.IssuedGrantID
	ev.SummaryDigest = out.SummaryDigest
	if met == nil {
		return
	}
	if out.Reason != "" {
		// A refused grant, then a good answer: the call passes and the
		// grant's refusal stays on record.
		ev.Detail = "presented grant refused: " + string(out.Reason)
	}
	ev.Via, ev.Factor = met.Via, met.Factor
	if out.Via == challenge.ViaAnswer {
		ev.Decision = DecisionStepUpPassed
	}
}

// refused records a refusal: enforced, or only audited in shadow mode.
func (o *observation) refused(d *denial, shadow bool) {
	o.ev.Reason, o.ev.Code, o.ev.Decision = d.reason, d.code, d.decision
	if d.err != nil {
		o.ev.Detail = d.err.Error()
	}
	if shadow {
		o.ev.Decision, o.ev.Code = DecisionShadowDeny, codes.OK
	}
}

// allowed records that the call may proceed.
func (o *observation) allowed() {
	o.ev.Code = codes.OK
	if o.ev.Decision == "" {
		o.ev.Decision = DecisionAllow
	}
	if o.ev.Reason == "" {
		o.ev.Reason = ReasonAllowed
	}
}

// decided completes the event once decide returned: whether the method
// requires step-up, and the latency of the decision.
func (o *observation) decided(p *EffectivePolicy) {
	o.ev.StepUpRequired = p != nil && p.StepUp != nil
	o.ev.Latency = o.now().Sub(o.ev.Time)
}

// audit hands the event to sink, the one audit event of the call, then
// ends the check span with the decision.
func (o *observation) audit(ctx context.Context, sink AuditSink, p *EffectivePolicy) {
	sink.Audit(ctx, &o.ev)
	if o.span != nil {
		o.endSpan(p)
	}
}

// endSpan records the decision on the check span and ends it.
func (o *observation) endSpan(p *EffectivePolicy) {
	ev := &o.ev
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
	o.span.SetAttributes(attrs...)
	switch ev.Decision {
	case DecisionAllow, DecisionStepUpPassed, DecisionShadowDeny:
		o.span.SetStatus(otelcodes.Ok, "")
	default:
		o.span.SetStatus(otelcodes.Error, string(ev.Reason))
	}
	o.span.End()
}
