package interceptor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"

	"github.com/stepupgrpc/stepup/dpop"
)

// Decision is what the Guard decided for one call.
type Decision string

// Decisions, one audit event each.
const (
	// DecisionAllow: the call proceeds (no step-up involved, or satisfied by
	// the token or a grant).
	DecisionAllow Decision = "allow"
	// DecisionDeny: the call is refused.
	DecisionDeny Decision = "deny"
	// DecisionChallenge: step-up is required; a challenge was sent.
	DecisionChallenge Decision = "challenge"
	// DecisionStepUpPassed: an answer to a challenge was accepted; the call proceeds.
	DecisionStepUpPassed Decision = "step_up_passed"
	// DecisionStepUpFailed: an answer or grant was refused; a new challenge
	// was sent, or the subject is locked out.
	DecisionStepUpFailed Decision = "step_up_failed"
	// DecisionShadowDeny: the policy is in shadow mode; the call would have
	// been refused for Reason but proceeds.
	DecisionShadowDeny Decision = "shadow_deny"
	// DecisionApprovalPending: the call waits for an out-of-band approval
	// (refused UNAVAILABLE with a retry delay); one event per retry.
	DecisionApprovalPending Decision = "approval_pending"

	// Decisions of the approver page (package approval).

	// DecisionApproverSignIn: a user signed in to the approver page with
	// their passkey.
	DecisionApproverSignIn Decision = "approver_sign_in"
	// DecisionApproverSignOut: a user signed out of the approver page; the
	// session ended on the server.
	DecisionApproverSignOut Decision = "approver_sign_out"
	// DecisionApprovalShown: the page showed a pending approval (its
	// summary and matching code) to the signed-in user.
	DecisionApprovalShown Decision = "approval_shown"
	// DecisionApprovalApproved: the user approved, with a passkey assertion
	// over the approval id and the summary digest.
	DecisionApprovalApproved Decision = "approval_approved"
	// DecisionApprovalDenied: the user denied the approval.
	DecisionApprovalDenied Decision = "approval_denied"
)

// Event is one audit record: one per decision. It never holds a token, a
// proof, a TOTP code, an answer, a grant or an assertion; only identifiers.
type Event struct {
	// Time is when the call reached the Guard.
	Time time.Time
	// Decision is what was decided.
	Decision Decision
	// Reason is the precise, stable reason code (docs/AUDIT.md).
	Reason Reason
	// Code is the gRPC status code sent (OK when the call proceeds).
	Code codes.Code
	// Method is the gRPC full method name.
	Method string
	// Stream is true for streaming methods (checked at stream open).
	Stream bool
	// Peer is the client's network address.
	Peer string
	// UserAgent is the client's user-agent header, as it sent it (never
	// checked: a client names itself). Empty when it sent none.
	UserAgent string
	// TraceID is the W3C trace id (32 lower-case hex digits) of the call:
	// the span in the call's context (an OpenTelemetry stats handler's), or
	// else the trace-id of a well-formed traceparent header the client sent.
	// It correlates records with traces; it authenticates nothing.
	TraceID string
	// StepUpRequired is true when the method's policy requires step-up,
	// whether or not this call satisfied it (false when the policy could
	// not be resolved).
	StepUpRequired bool
	// Subject, TokenID and ClientID come from the verified access token.
	Subject, TokenID, ClientID string
	// Thumbprint is the RFC 7638 thumbprint of the verified DPoP key.
	Thumbprint string
	// Factor is the step-up factor used ("totp", "device_key", "webauthn").
	Factor string
	// Via says what satisfied step-up: "token", "grant" or "answer".
	Via string
	// ChallengeID and GrantID identify the challenge answered and the grant
	// presented by this call.
	ChallengeID, GrantID string
	// IssuedChallengeID and IssuedGrantID identify the challenge sent with a
	// refusal and the grant returned with a passed step-up.
	IssuedChallengeID, IssuedGrantID string
	// SummaryDigest is challenge.SummaryDigest of the summary of an
	// out-of-band approval the event concerns (issued, shown, decided,
	// answered): which transaction, without its text.
	SummaryDigest string
	// Detail is the precise cause of a refusal, for operators (never a secret).
	Detail string
	// Latency is the time the Guard spent deciding.
	Latency time.Duration
	// TokenTime, ProofTime and StepUpTime are how long the access token's
	// verification (the verified-token cache included), the DPoP proof's
	// (its replay-store insert included) and the step-up check (grant,
	// answer, a new challenge and their store calls) took; zero when the
	// stage did not run. Measured on the monotonic clock, whatever
	// WithClock says, for metrics (package metrics).
	TokenTime, ProofTime, StepUpTime time.Duration
}

// SetOrigin fills e's Peer, UserAgent and TraceID from the context of a
// gRPC server call: the peer's address, the user-agent header, and the
// trace id of the span in ctx or, without one, of a well-formed
// traceparent header (W3C Trace Context). Sinks of events made outside the
// Guard (a proxy's own events) use it to name the origin as the Guard does.
func (e *Event) SetOrigin(ctx context.Context) {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		e.Peer = peerString(p.Addr)
	}
	md := incoming{ctx}
	if ua := md.values("user-agent"); len(ua) > 0 {
		e.UserAgent = ua[0]
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		e.TraceID = sc.TraceID().String()
	} else if tp := md.values("traceparent"); len(tp) == 1 {
		e.TraceID = traceparentID(tp[0])
	}
}

// traceparentID returns the trace-id of a W3C traceparent header value
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "" when the value is not one: a
// version other than two hex digits or "ff", a trace id that is not 32
// lower-case hex digits or is all zeros.
func traceparentID(v string) string {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || v[:2] == "ff" || !isLowerHex(v[:2]) {
		return ""
	}
	id := v[3:35]
	if !isLowerHex(id) || id == "00000000000000000000000000000000" {
		return ""
	}
	switch {
	case v[:2] == "00" && len(v) != 55:
		return "" // version 00 has exactly four fields
	case len(v) > 55 && v[55] != '-':
		return "" // a later version's fields are separated by dashes
	}
	return id
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Sinks returns a sink that hands every event to each of sinks in turn
// (the same *Event: a sink must not keep or modify it), such as a log and
// metrics.
func Sinks(sinks ...AuditSink) AuditSink {
	return AuditFunc(func(ctx context.Context, e *Event) {
		for _, s := range sinks {
			s.Audit(ctx, e)
		}
	})
}

// AuditSink receives every decision. Audit is called synchronously on the
// request path; a sink that does I/O should buffer.
type AuditSink interface {
	Audit(ctx context.Context, e *Event)
}

// AuditFunc adapts a function to AuditSink.
type AuditFunc func(ctx context.Context, e *Event)

// Audit calls f.
func (f AuditFunc) Audit(ctx context.Context, e *Event) { f(ctx, e) }

// SlogSink writes events as structured log records: Info for allowed calls,
// Warn for refusals and shadow refusals.
type SlogSink struct{ logger *slog.Logger }

// NewSlogSink returns a sink writing to l.
func NewSlogSink(l *slog.Logger) *SlogSink { return &SlogSink{logger: l} }

// Audit writes e as one record with the message "stepup.audit".
func (s *SlogSink) Audit(ctx context.Context, e *Event) {
	level := slog.LevelInfo
	switch {
	case e.Reason == Reason(dpop.ReasonNonceRequired):
		// A client's first call to a server that requires nonces: the
		// expected first step of RFC 9449 §8, not a sign of trouble.
	case e.Decision == DecisionDeny, e.Decision == DecisionStepUpFailed, e.Decision == DecisionShadowDeny:
		level = slog.LevelWarn
	}
	if !s.logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("decision", string(e.Decision)),
		slog.String("reason", string(e.Reason)),
		slog.String("code", e.Code.String()),
		slog.String("method", e.Method),
		slog.Bool("stream", e.Stream),
		slog.String("peer", e.Peer),
	)
	if e.StepUpRequired {
		attrs = append(attrs, slog.Bool("step_up_required", true))
	}
	for _, kv := range [...]struct{ k, v string }{
		{"user_agent", e.UserAgent}, {"trace_id", e.TraceID},
		{"subject", e.Subject}, {"token_id", e.TokenID}, {"client_id", e.ClientID},
		{"jkt", e.Thumbprint}, {"factor", e.Factor}, {"via", e.Via},
		{"challenge_id", e.ChallengeID}, {"grant_id", e.GrantID},
		{"issued_challenge_id", e.IssuedChallengeID}, {"issued_grant_id", e.IssuedGrantID},
		{"summary_digest", e.SummaryDigest}, {"detail", e.Detail},
	} {
		if kv.v != "" {
			attrs = append(attrs, slog.String(kv.k, kv.v))
		}
	}
	attrs = append(attrs, slog.Duration("latency", e.Latency))
	s.logger.LogAttrs(ctx, level, "stepup.audit", attrs...)
}

// AuditRecorder is an AuditSink that keeps every event in memory, for tests
// of a server's policies: assert that a call was refused, and why. It is
// safe for concurrent use; the zero value is ready.
type AuditRecorder struct {
	mu     sync.Mutex
	events []Event
}

// Audit records a copy of e.
func (r *AuditRecorder) Audit(_ context.Context, e *Event) {
	r.mu.Lock()
	r.events = append(r.events, *e)
	r.mu.Unlock()
}

// Events returns a copy of the events recorded so far, oldest first.
func (r *AuditRecorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Last returns the newest event, and false when none was recorded.
func (r *AuditRecorder) Last() (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		return Event{}, false
	}
	return r.events[len(r.events)-1], true
}

// Reset forgets every recorded event.
func (r *AuditRecorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}
