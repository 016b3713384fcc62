package interceptor

import (
	"context"
	"time"
)

// Identity is what the Guard verified about a call. Handlers read it with
// IdentityFromContext.
type Identity struct {
	// Subject is the token's "sub".
	Subject string
	// Token is the verified access token (nil for a method without
	// authentication).
	Token *Token
	// Thumbprint is the RFC 7638 thumbprint of the DPoP key; empty for a
	// bearer token on a method that allows one.
	Thumbprint string
	// StepUp is the step-up that satisfied the policy, nil when the policy
	// needs none.
	StepUp *StepUpState
}

// StepUpState describes how a step-up requirement was satisfied.
type StepUpState struct {
	// Via is "token" (acr and auth_time, RFC 9470), "grant" or "answer".
	Via string
	// Factor is the factor's short name ("totp", "device_key", "webauthn");
	// empty when satisfied by the token.
	Factor string
	// AuthTime is when the second factor was verified.
	AuthTime time.Time
	// GrantID is the id (jti) of the grant that satisfied the policy, or of
	// the grant an answer earned; empty when there is none. Not a secret.
	GrantID string
}

type identityKey struct{}

// IdentityFromContext returns the identity the Guard verified for this call
// (unary or stream), and false when the Guard did not run or the method needs
// no authentication. It and the accessors below accept a nil context.
func IdentityFromContext(ctx context.Context) (*Identity, bool) {
	if ctx == nil {
		return nil, false
	}
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// SubjectFromContext returns the verified subject, or "".
func SubjectFromContext(ctx context.Context) string {
	if id, ok := IdentityFromContext(ctx); ok {
		return id.Subject
	}
	return ""
}

// ThumbprintFromContext returns the verified DPoP key thumbprint, or "".
func ThumbprintFromContext(ctx context.Context) string {
	if id, ok := IdentityFromContext(ctx); ok {
		return id.Thumbprint
	}
	return ""
}

// TokenFromContext returns the verified access token, or nil.
func TokenFromContext(ctx context.Context) *Token {
	if id, ok := IdentityFromContext(ctx); ok {
		return id.Token
	}
	return nil
}

// StepUpFromContext returns how step-up was satisfied, or nil.
func StepUpFromContext(ctx context.Context) *StepUpState {
	if id, ok := IdentityFromContext(ctx); ok {
		return id.StepUp
	}
	return nil
}

// ContextWithIdentity returns ctx carrying id, as the Guard hands it to a
// handler: for tests of handlers (stepuptest.WithIdentity), and for code
// that authenticated a call another way. Nothing a client sends can set it.
func ContextWithIdentity(ctx context.Context, id *Identity) context.Context {
	return withIdentity(ctx, id)
}

func withIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}
