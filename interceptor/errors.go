package interceptor

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Reason is a stable audit reason code. The precise reason of every decision
// goes to the audit event; the client sees only the coarse wire reason (a
// Wire constant, which ReasonFromError returns). The reasons of the dpop
// and challenge packages appear here unchanged. docs/AUDIT.md lists them
// all.
type Reason string

// Reasons decided by the interceptor itself.
const (
	// ReasonAllowed: every check passed.
	ReasonAllowed Reason = "ALLOWED"
	// ReasonNoAuthentication: the method's policy needs no credentials.
	ReasonNoAuthentication Reason = "NO_AUTHENTICATION_REQUIRED"
	// ReasonPolicyMissing: the method has no policy and the Guard requires one.
	ReasonPolicyMissing Reason = "POLICY_MISSING"
	// ReasonMetadataDuplicate: authorization, dpop or a stepup header sent twice.
	ReasonMetadataDuplicate Reason = "METADATA_DUPLICATE"
	// ReasonMetadataTooLarge: a credential header over its size limit.
	ReasonMetadataTooLarge Reason = "METADATA_TOO_LARGE"
	// ReasonTokenMissing: no authorization header.
	ReasonTokenMissing Reason = "TOKEN_MISSING"
	// ReasonTokenScheme: the authorization scheme is neither DPoP nor Bearer,
	// or the credentials are not token68 syntax.
	ReasonTokenScheme Reason = "TOKEN_BAD_SCHEME"
	// ReasonTokenMalformed: not a JWS compact serialisation.
	ReasonTokenMalformed Reason = "TOKEN_MALFORMED"
	// ReasonTokenBadAlgorithm: an algorithm outside the allowlist (none, HS256...).
	ReasonTokenBadAlgorithm Reason = "TOKEN_BAD_ALG"
	// ReasonTokenBadType: typ is not at+jwt (RFC 9068 §4).
	ReasonTokenBadType Reason = "TOKEN_BAD_TYP"
	// ReasonTokenBadHeader: a key-carrying header (jwk, jku, x5u, x5c) or crit.
	ReasonTokenBadHeader Reason = "TOKEN_BAD_HEADER"
	// ReasonTokenBadSignature: no issuer key verifies the signature.
	ReasonTokenBadSignature Reason = "TOKEN_BAD_SIGNATURE"
	// ReasonTokenExpired: exp is past (beyond the leeway).
	ReasonTokenExpired Reason = "TOKEN_EXPIRED"
	// ReasonTokenNotYetValid: nbf or iat is in the future (beyond the leeway).
	ReasonTokenNotYetValid Reason = "TOKEN_NOT_YET_VALID"
	// ReasonTokenWrongIssuer: iss is not the configured issuer.
	ReasonTokenWrongIssuer Reason = "TOKEN_WRONG_ISSUER"
	// ReasonTokenWrongAudience: aud does not name this resource server.
	ReasonTokenWrongAudience Reason = "TOKEN_WRONG_AUDIENCE"
	// ReasonTokenInvalidClaims: a required claim is missing or ill-typed.
	ReasonTokenInvalidClaims Reason = "TOKEN_INVALID_CLAIMS"
	// ReasonTokenTooOld: the token is older than the method's max_token_age.
	ReasonTokenTooOld Reason = "TOKEN_TOO_OLD"
	// ReasonTokenNotBound: a DPoP-scheme token without cnf.jkt.
	ReasonTokenNotBound Reason = "TOKEN_NOT_BOUND"
	// ReasonBoundTokenAsBearer: a DPoP-bound token sent with the Bearer scheme
	// (RFC 9449 §7.1): refused on every method.
	ReasonBoundTokenAsBearer Reason = "TOKEN_BOUND_AS_BEARER"
	// ReasonDPoPRequired: a bearer token on a method that requires DPoP.
	ReasonDPoPRequired Reason = "DPOP_REQUIRED"
	// ReasonProofMissing: the DPoP scheme without a dpop header.
	ReasonProofMissing Reason = "DPOP_PROOF_MISSING"
	// ReasonTokenVerifierFailed: the TokenVerifier failed without a reason
	// (an introspection endpoint down): fail closed.
	ReasonTokenVerifierFailed Reason = "TOKEN_VERIFIER_FAILED"
	// ReasonInsufficientScope: the token lacks a required scope.
	ReasonInsufficientScope Reason = "INSUFFICIENT_SCOPE"
	// ReasonStepUpRequired: step-up needed and a challenge was issued.
	ReasonStepUpRequired Reason = "STEPUP_REQUIRED"
	// ReasonStepUpLocked: too many wrong step-up answers for the subject.
	ReasonStepUpLocked Reason = "STEPUP_ATTEMPTS_EXCEEDED"
	// ReasonStepUpUnavailable: the step-up store could not answer: fail closed.
	ReasonStepUpUnavailable Reason = "STEPUP_STORE_UNAVAILABLE"
	// ReasonTokenRevoked: the subject's tokens issued up to this one's iat
	// were revoked (challenge.Revocations.RevokeTokens), checked on every call
	// under WithTokenRevocationFrom, past the verified-token cache.
	ReasonTokenRevoked Reason = "TOKEN_REVOKED"
	// ReasonKeyRevoked: the DPoP key the token is bound to (cnf.jkt) was
	// revoked (challenge.Revocations.RevokeKey), checked on every call under
	// WithTokenRevocationFrom, past the verified-token cache.
	ReasonKeyRevoked Reason = "DPOP_KEY_REVOKED"
	// ReasonTokenLifetimeTooLong: under WithTokenRevocationFrom, a token whose
	// lifetime (exp - iat) exceeds challenge.MaxTokenLifetime, how long a
	// revocation is remembered, or that has no iat or no exp: a revocation
	// could not cover it until it expires.
	ReasonTokenLifetimeTooLong Reason = "TOKEN_LIFETIME_TOO_LONG"
	// ReasonInternal: the Guard could not decide (a policy failed to resolve).
	ReasonInternal Reason = "INTERNAL"
	// ReasonAuthorityNotConfigured: a DPoP call over TLS to a Guard whose
	// DPoP verifier has no authorities (dpop.WithAuthorities): the htu
	// would be checked against the :authority the client chose. Refused
	// unless WithInsecureRequestAuthority.
	ReasonAuthorityNotConfigured Reason = "AUTHORITY_NOT_CONFIGURED"

	// ReasonStreamTokenExpired: an open stream ended because its access
	// token expired, or outlived the method's max_token_age.
	ReasonStreamTokenExpired Reason = "STREAM_TOKEN_EXPIRED"
	// ReasonStreamStepUpExpired: an open stream ended because the step-up
	// it was opened with is older than the method's max_age.
	ReasonStreamStepUpExpired Reason = "STREAM_STEPUP_EXPIRED"
	// ReasonStreamRevoked: an open stream ended because a re-check found its
	// access token no longer valid (the TokenVerifier refused it) or the
	// subject's step-ups revoked, or could not tell (fail closed).
	ReasonStreamRevoked Reason = "STREAM_REVOKED"
)

// Wire reasons: google.rpc.ErrorInfo.reason values a client sees. They are
// the RFC 6750 / RFC 9449 / RFC 9470 error codes in upper snake case.
const (
	WireInvalidRequest    = "INVALID_REQUEST"
	WireInvalidToken      = "INVALID_TOKEN"
	WireInvalidDPoPProof  = "INVALID_DPOP_PROOF"
	WireUseDPoPNonce      = "USE_DPOP_NONCE"
	WireInsufficientScope = "INSUFFICIENT_SCOPE"
	// WireInsufficientUserAuthentication: step-up required (RFC 9470).
	WireInsufficientUserAuthentication = "INSUFFICIENT_USER_AUTHENTICATION"
	WireStepUpLocked                   = "STEP_UP_LOCKED"
	WirePolicyMissing                  = "POLICY_MISSING"
	WireUnavailable                    = "TEMPORARILY_UNAVAILABLE"
	// WireApprovalPending: the out-of-band approval the answer names is not
	// decided yet; retry the same call with the same answer after the
	// google.rpc.RetryInfo delay (code UNAVAILABLE).
	WireApprovalPending = "APPROVAL_PENDING"
	// WireApprovalDenied: the user denied the approval (PERMISSION_DENIED).
	WireApprovalDenied = "APPROVAL_DENIED"
	// WireApprovalExpired: the approval expired before the user approved
	// it (UNAUTHENTICATED); call again for a new one.
	WireApprovalExpired = "APPROVAL_EXPIRED"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every Stepup refusal.
const ErrorDomain = "stepup.v1"

// Response metadata names.
const (
	// MetadataDPoPNonce carries the server's DPoP nonce (RFC 9449 §8).
	MetadataDPoPNonce = "dpop-nonce"
	// MetadataWWWAuthenticate carries the RFC 9449 / RFC 9470 challenge.
	MetadataWWWAuthenticate = "www-authenticate"
	// MetadataStepUpGrant carries a step-up grant (response and request).
	MetadataStepUpGrant = "stepup-grant"
	// MetadataStepUpAnswer carries a step-up answer (request).
	MetadataStepUpAnswer = "stepup-answer"
	// MetadataAuthorization and MetadataDPoP are the request credentials.
	MetadataAuthorization = "authorization"
	MetadataDPoP          = "dpop"
)

// ErrorInfoProofHash is the google.rpc.ErrorInfo metadata key under which a
// Guard refusal names the call it refuses: base64url (no padding) of
// SHA-256 of the refused call's dpop header value. A client retries (new
// nonce, step-up answer) only a refusal that names the proof it just sent:
// a status propagated from another call, or forged by a handler, names
// another proof or none.
const ErrorInfoProofHash = "proof_sha256"

// ErrorInfoRequestField is the google.rpc.ErrorInfo metadata key under
// which a refusal of the request itself (INVALID_ARGUMENT, reason
// INVALID_REQUEST) names where in the request the problem is: "to.#7" for
// an unknown field number 7 inside the field to (docs/PROTOCOL.md §13.6).
const ErrorInfoRequestField = "request_field"

// denial is a refusal on its way to the client and the audit log.
type denial struct {
	reason    Reason
	code      codes.Code
	wire      string
	err       error // the precise cause, for the audit log only
	challenge *stepupv1.StepUpChallenge
	nonce     string // dpop-nonce to send
	acr       []string
	maxAge    int64 // seconds, -1 when not applicable
	dpop      bool  // the method takes DPoP (scheme of www-authenticate)
	algs      string
	proofHash string        // ErrorInfoProofHash, "" when the call had no proof
	field     string        // ErrorInfoRequestField, "" when not a request refusal
	decision  Decision      // the audit decision: DecisionDeny, or stepUpDecisions
	retry     time.Duration // google.rpc.RetryInfo delay, 0 for none
}

// genericMessages open the texts a client sees, followed by the refusal's
// hint (hints.go); the reason detail stays in the audit log.
var genericMessages = map[codes.Code]string{
	codes.Unauthenticated:  "stepup: authentication failed",
	codes.InvalidArgument:  "stepup: the request cannot be approved as sent",
	codes.PermissionDenied: "stepup: permission denied",
	codes.Unavailable:      "stepup: temporarily unavailable",
	codes.Internal:         "stepup: internal error",
}

// newRequestDenial refuses a request the Guard cannot read completely
// (readRequest's error).
func newRequestDenial(err error) *denial {
	var re *challenge.RequestError
	if !errors.As(err, &re) {
		return newDenial(Reason(challenge.ReasonRequestInvalid), err)
	}
	d := newDenial(Reason(re.Reason), err)
	d.field = re.Field
	return d
}

func newDenial(r Reason, err error) *denial {
	f := wireRefusalOf(r)
	return &denial{reason: r, code: f.code, wire: f.wire, err: err, maxAge: -1, decision: DecisionDeny}
}

// reasonOf extracts a stable reason from an error of this package, dpop or
// challenge; fallback when none.
func reasonOf(err error, fallback Reason) Reason {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	if r := dpop.ReasonOf(err); r != "" {
		return Reason(r)
	}
	return fallback
}

// status builds the client-facing status: the code's generic text and the
// hint (hints.go), ErrorInfo with the wire reason and the hint, and the
// challenge detail for step-up.
func (d *denial) status() error {
	h := hints[wireRefusalOf(d.reason).hint]
	st := status.New(d.code, genericMessages[d.code]+" (hint "+h.Code+"; fix: "+h.FixSide+"): "+h.Fix)
	info := &errdetails.ErrorInfo{Reason: d.wire, Domain: ErrorDomain, Metadata: map[string]string{
		ErrorInfoHint: h.Code, ErrorInfoFixSide: h.FixSide, ErrorInfoFix: h.Fix,
	}}
	if d.proofHash != "" {
		info.Metadata[ErrorInfoProofHash] = d.proofHash
	}
	if d.field != "" {
		info.Metadata[ErrorInfoRequestField] = d.field
	}
	details := []proto.Message{info}
	if d.challenge != nil {
		details = append(details, d.challenge)
	}
	if d.retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(d.retry)})
	}
	p := st.Proto()
	for _, m := range details {
		// Deterministic: the ErrorInfo metadata map is encoded in key
		// order, so one refusal has one encoding (docs/examples).
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			continue
		}
		p.Details = append(p.Details, &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b})
	}
	return status.ErrorProto(p)
}

// proofHash is the ErrorInfoProofHash value of a dpop header value.
func proofHash(proof string) string {
	h := sha256.Sum256([]byte(proof))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// handlerStatus returns the error a handler returned, without the details
// that only the Guard may send: a google.rpc.ErrorInfo of ErrorDomain and a
// StepUpChallenge. A status a handler propagates from a downstream
// Stepup-protected call (or forges) thus never reads as this Guard's
// refusal, and a client never retries (runs the handler again) because of
// it. Code, message and other details are kept.
func handlerStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || len(st.Proto().GetDetails()) == 0 {
		return err
	}
	p := st.Proto()
	kept := p.Details[:0:0]
	for _, a := range p.Details {
		if guardDetail(a) {
			continue
		}
		kept = append(kept, a)
	}
	if len(kept) == len(p.Details) {
		return err
	}
	p.Details = kept
	return status.ErrorProto(p)
}

// guardDetail reports whether a status detail is one only the Guard sends.
// A detail that cannot be decoded is kept as it is.
func guardDetail(a *anypb.Any) bool {
	switch a.MessageName() {
	case "stepup.v1.StepUpChallenge":
		return true
	case "google.rpc.ErrorInfo":
		var info errdetails.ErrorInfo
		return a.UnmarshalTo(&info) == nil && info.GetDomain() == ErrorDomain
	}
	return false
}

// trailer is the response metadata of a refusal: the www-authenticate
// challenge and, when demanded, a fresh DPoP nonce.
func (d *denial) trailer() metadata.MD {
	md := metadata.MD{}
	if h := d.wwwAuthenticate(); h != "" {
		md.Set(MetadataWWWAuthenticate, h)
	}
	if d.nonce != "" {
		md.Set(MetadataDPoPNonce, d.nonce)
	}
	return md
}

// wwwAuthenticate renders the challenge in RFC 9449 §7.1 / RFC 6750 §3 /
// RFC 9470 §3 syntax, for HTTP gateways and non-gRPC-aware tooling.
func (d *denial) wwwAuthenticate() string {
	scheme := "Bearer"
	if d.dpop {
		scheme = "DPoP"
	}
	if d.code != codes.Unauthenticated && d.wire != WireInsufficientScope {
		return ""
	}
	var params []string
	// RFC 6750 §3.1: a request without credentials gets no error code.
	if d.reason != ReasonTokenMissing {
		params = append(params, `error="`+strings.ToLower(d.wire)+`"`)
	}
	switch d.wire {
	case WireInsufficientUserAuthentication:
		params = append(params, `error_description="A different authentication level is required"`)
		if len(d.acr) > 0 {
			params = append(params, `acr_values="`+strings.Join(d.acr, " ")+`"`)
		}
		if d.maxAge >= 0 {
			params = append(params, "max_age="+strconv.FormatInt(d.maxAge, 10))
		}
	case WireUseDPoPNonce:
		params = append(params, `error_description="Authorization server requires nonce in DPoP proof"`)
	}
	if d.dpop && d.algs != "" {
		params = append(params, `algs="`+d.algs+`"`)
	}
	if len(params) == 0 {
		return scheme
	}
	return scheme + " " + strings.Join(params, ", ")
}

// stepUpDecisions is the audit decision of a step-up refusal, by the
// State of its Outcome. A satisfied call is not refused: it is audited as
// DecisionAllow, or DecisionStepUpPassed when satisfied by an answer.
var stepUpDecisions = map[challenge.State]Decision{
	challenge.StateChallenged: DecisionChallenge,
	challenge.StateRefused:    DecisionStepUpFailed,
	challenge.StateLocked:     DecisionStepUpFailed,
	challenge.StatePending:    DecisionApprovalPending,
	challenge.StateFinal:      DecisionStepUpFailed,
}

// stepUpDenial turns the Outcome of a refused call into a refusal.
func stepUpDenial(out *challenge.Outcome, req *challenge.Requirement) *denial {
	var cause error
	if out.Detail != "" {
		cause = errors.New(out.Detail)
	}
	r := Reason(out.Reason)
	if r == "" {
		r = ReasonStepUpRequired
	}
	if out.State == challenge.StateLocked {
		// Refused as a lock-out, audited with its cause when that is the
		// limit of pending approvals.
		r = ReasonStepUpLocked
	}
	d := newDenial(r, cause)
	if out.State == challenge.StateLocked && out.Reason == challenge.ReasonApprovalsLimit {
		d.reason = Reason(out.Reason)
	}
	if dec, ok := stepUpDecisions[out.State]; ok {
		d.decision = dec
	}
	switch out.State {
	case challenge.StateLocked:
		return d
	case challenge.StatePending:
		// An approval not decided yet: the same answer again, later.
		d.retry = out.RetryAfter
		return d
	case challenge.StateFinal:
		if d.wire != WireInsufficientUserAuthentication {
			// Denied or expired approval: its own code, and no new
			// challenge.
			return d
		}
	}
	d.code, d.wire = codes.Unauthenticated, WireInsufficientUserAuthentication
	d.challenge = out.Challenge
	// Advertise exactly what can satisfy the method (RFC 9470 §3): a token
	// acr counts only for a reusable requirement; any other needs an
	// authentication for this call (max_age=0).
	d.maxAge = 0
	if req.Reusable() {
		d.acr = req.ACRValues
		d.maxAge = int64(req.MaxAge.Seconds())
	}
	return d
}
