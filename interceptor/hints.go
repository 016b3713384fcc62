package interceptor

import (
	"google.golang.org/grpc/status"
)

// Keys of the google.rpc.ErrorInfo metadata of every Guard refusal that
// tell the client what to change (docs/PROTOCOL.md, "Hints"). Their values
// are fixed texts chosen by the refusal's reason class, never taken from
// the request or the server's configuration: the precise reason stays in
// the audit log.
const (
	// ErrorInfoHint: the hint code, a stable lower snake case class of
	// reasons ("token_expired", "proof_htu", "server_authorities").
	ErrorInfoHint = "hint"
	// ErrorInfoFixSide: who has something to change: "client", "server",
	// "token_issuer", "user", or "retry" (nothing to change: call again).
	ErrorInfoFixSide = "fix_side"
	// ErrorInfoFix: what to change, one sentence in English.
	ErrorInfoFix = "fix"
)

// Hint is the part of a refusal's cause a client may be told: the reason
// class, the side that has to change something, and what. It never holds a
// configured value, key material or anything of the request.
type Hint struct {
	// Code is the stable hint code (ErrorInfoHint).
	Code string
	// FixSide is "client", "server", "token_issuer", "user" or "retry".
	FixSide string
	// Fix says what to change.
	Fix string
}

// hints are the documented hints by code; docs/PROTOCOL.md lists the same.
var hints = map[string]Hint{}

func init() {
	for _, h := range []Hint{
		{"token_missing", "client", "send the access token as \"authorization: DPoP <token>\" with a dpop proof for the call (interceptor.NewClient does both)"},
		{"token_scheme", "client", "send \"authorization: DPoP <token>\": the DPoP scheme (or Bearer where a method allows it), one space, the token"},
		{"token_not_jwt", "token_issuer", "the access token is not a JWT this server can read (a compact JWS, three base64url segments); an opaque token cannot be verified here: ask the authorization server for a JWT access token"},
		{"token_header", "token_issuer", "the access token's header is refused: an alg the server accepts, typ at+jwt (RFC 9068), and no jwk, jku, x5u, x5c or crit"},
		{"token_refused", "client", "the access token was refused by the server's token verifier: get a new token; if that is refused too, the server's audit log says why"},
		{"token_signature", "token_issuer", "no key of the issuer this server trusts verifies the token: it comes from another issuer or environment, or from a key the server does not have"},
		{"token_expired", "client", "the access token is expired, not yet valid, or older than this method accepts: get a fresh one, and check the clocks of client and issuer"},
		{"token_issuer", "token_issuer", "the token's iss is not the issuer this server trusts: get the token from that issuer"},
		{"token_audience", "token_issuer", "the token's aud does not name this server: ask for a token for this resource (RFC 8707 resource, or the provider's audience parameter; docs/PROVIDERS.md)"},
		{"token_claims", "token_issuer", "a claim the server needs is missing or ill-formed (sub, exp, scope, acr, auth_time, cnf), or the token lives longer than revocation covers (24 h): fix what the authorization server issues"},
		{"token_not_bound", "token_issuer", "the DPoP scheme needs a DPoP-bound token (cnf.jkt): request it with a DPoP proof at the token endpoint (RFC 9449 section 5)"},
		{"dpop_required", "client", "this method takes DPoP only: send the token with the DPoP scheme and a dpop proof, never a bound token as Bearer"},
		{"credentials_revoked", "user", "the token, or the DPoP key it is bound to, was revoked: sign in again (with a new key if the key was revoked)"},
		{"stream_ended", "retry", "the stream's credentials expired or were revoked while it was open: open a new stream, with fresh credentials if that is refused"},
		{"scope", "token_issuer", "the token lacks a scope this method requires (its policy in the service's .proto): request a token with it"},
		{"metadata", "client", "send authorization, dpop, stepup-answer and stepup-grant at most once each and within their size limits (docs/PROTOCOL.md)"},
		{"proof_missing", "client", "the DPoP scheme needs a dpop header: a proof signed for this call"},
		{"proof_invalid", "client", "the DPoP proof is refused: a compact JWS with typ dpop+jwt, an algorithm from www-authenticate's algs, a public jwk of sufficient size, a valid signature, htm POST (docs/PROTOCOL.md)"},
		{"proof_htu", "client", "sign the proof's htu as https://<authority>/<package.Service>/<Method>, where authority is one the server lists, the TLS ServerName grpc-go sends (without a port), not the address dialled; a server that does not list a name its clients use adds it (dpop.WithAuthorities)"},
		{"proof_time", "client", "the proof's iat is outside the server's window: sign a fresh proof for every call, and check the client's clock"},
		{"proof_replayed", "client", "a proof is single use: sign a new one (new jti, fresh iat) for every call, retries included"},
		{"proof_ath", "client", "the proof's ath must be the base64url SHA-256 of the access token sent with it"},
		{"proof_key", "client", "the proof is not signed by the key the token is bound to (cnf.jkt): sign with the key the token was issued for"},
		{"use_dpop_nonce", "retry", "retry with a proof whose nonce is the dpop-nonce of this refusal (RFC 9449 section 8)"},
		{"unavailable", "retry", "the server could not check the call now (its store or token verifier did not answer): retry later"},
		{"server_authorities", "server", "the server names no DPoP authorities and so refuses DPoP over TLS: its operator sets dpop.WithAuthorities to the :authority clients send; nothing to change on the client"},
		{"server_error", "server", "the server cannot enforce this method's policy (its audit log says why): nothing to change on the client"},
		{"policy_missing", "server", "the method has no stepup policy and the server requires one: annotate it in the service's .proto (docs/POLICY.md)"},
		{"stepup_required", "user", "answer the challenge in this refusal (stepup.v1.StepUpChallenge) with one of its factors, and send the call again with the answer"},
		{"stepup_refused", "user", "the step-up answer or grant sent was not accepted (a wrong or reused code, an expired or used challenge, a grant no longer valid): answer the new challenge in this refusal"},
		{"stepup_expired", "user", "the step-up this stream was opened with is older than the method's max_age: open a new stream and step up again"},
		{"stepup_locked", "user", "too many step-up attempts or pending approvals for this user: wait before trying again"},
		{"approval_pending", "retry", "the approval on the user's other device is not decided yet: send the same call with the same answer again after the RetryInfo delay"},
		{"approval_denied", "user", "the user denied the approval on their other device"},
		{"approval_expired", "user", "the approval expired before the user decided: call again for a new challenge"},
		{"request_refused", "client", "the request has a field the server's schema does not know (request_field names it) or cannot be read: send it as the server's .proto defines it"},
	} {
		hints[h.Code] = h
	}
}

// HintFromError returns the hint of a Stepup refusal (its ErrorInfo of
// ErrorDomain), or false when err is not one or carries none.
func HintFromError(err error) (Hint, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return Hint{}, false
	}
	h := refusalDetails(st).hint
	return h, h.Code != ""
}
