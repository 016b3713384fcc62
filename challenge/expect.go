package challenge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Expected is the call a client is making, against which it checks a
// step-up challenge before showing it to the user or answering it.
type Expected struct {
	// Method is the gRPC full method being called, "/pkg.Svc/Method".
	Method string
	// Request is the request message of a unary call; nil for a stream.
	Request proto.Message
	// Thumbprint is the RFC 7638 thumbprint of the client's DPoP key
	// (dpop.Signer.Thumbprint).
	Thumbprint string
	// Now is the client's clock.
	Now time.Time
	// Display declares the fields the server displays beyond those marked
	// with (stepup.v1.display) in the client's descriptors: the server's
	// WithDisplayFields (docs/PROTOCOL.md §13.4). Usually empty.
	Display DisplayFields
	// Trusted, when set, is the server's challenge key set, and the
	// challenge's MAC must verify with it: for a first-party client that
	// holds it. Otherwise the claims are read without their MAC: the client
	// cannot verify it, and it only narrows what the client accepts.
	Trusted *KeySet
}

// Mismatch says which check of CheckChallenge refused a challenge. Values
// never change between releases.
type Mismatch string

// The checks of CheckChallenge, in the order they run.
const (
	// MismatchMalformed: not a stepup-challenge+jwt, unreadable claims, or
	// the challenge's displayed fields (expires_at, factors, acr_values,
	// max_age, bound_to_request) disagree with its signed claims.
	MismatchMalformed Mismatch = "malformed"
	// MismatchSignature: Expected.Trusted is set and the MAC does not verify.
	MismatchSignature Mismatch = "signature"
	// MismatchMethod: the challenge is for another method.
	MismatchMethod Mismatch = "method"
	// MismatchKey: the challenge was issued to another DPoP key.
	MismatchKey Mismatch = "key"
	// MismatchExpired: the challenge has expired by the client's clock, or
	// expires further ahead than any server issues one (MaxChallengeTTL,
	// plus 5 minutes of clock skew).
	MismatchExpired Mismatch = "expired"
	// MismatchRequest: the challenge is bound to a request whose digest is
	// not that of the request the client is sending.
	MismatchRequest Mismatch = "request"
	// MismatchSummary: the summary shown with the challenge is not the one
	// the client computes from its own request.
	MismatchSummary Mismatch = "summary"
)

// CheckError is a challenge CheckChallenge refused.
type CheckError struct {
	Mismatch Mismatch
	Detail   string
}

// Error returns "challenge: refused challenge (<mismatch>): <detail>".
func (e *CheckError) Error() string {
	return "challenge: refused challenge (" + string(e.Mismatch) + "): " + e.Detail
}

// CheckChallenge checks, before a client shows a challenge to its user or
// answers it, that the challenge is for the call it is making: the method
// being called, the client's own DPoP key, not expired, bound (when it is
// bound) to the digest of the client's own request, its summary exactly the
// one the client computes from that request, and, with Expected.Trusted,
// MAC-signed by the server. A server (or anyone relaying its refusals) can
// then neither make the client approve another method or another request,
// nor show the user a summary of something other than what is sent. It
// returns nil or a *CheckError.
func CheckChallenge(ch *stepupv1.StepUpChallenge, want Expected) error {
	refuse := func(m Mismatch, format string, args ...any) error {
		return &CheckError{Mismatch: m, Detail: fmt.Sprintf(format, args...)}
	}
	if ch == nil || ch.GetChallenge() == "" {
		return refuse(MismatchMalformed, "no challenge")
	}
	var payload []byte
	if want.Trusted != nil {
		p, _, f := want.Trusted.verify(ch.GetChallenge(), ChallengeType)
		switch f {
		case tokenMalformed:
			return refuse(MismatchMalformed, "not a %s", ChallengeType)
		case tokenBadSignature:
			return refuse(MismatchSignature, "the MAC does not verify with the trusted key set")
		}
		payload = p
	} else {
		p, ok := unverifiedPayload(ch.GetChallenge())
		if !ok {
			return refuse(MismatchMalformed, "not a %s", ChallengeType)
		}
		payload = p
	}
	c, err := parseChallengeClaims(payload)
	if err != nil {
		return refuse(MismatchMalformed, "claims: %v", err)
	}
	if d := displayed(ch, c); d != "" {
		return refuse(MismatchMalformed, "the displayed %s disagrees with the signed claims", d)
	}
	if c.Method != want.Method || ch.GetMethod() != want.Method {
		return refuse(MismatchMethod, "the challenge is for %q, the call is %q", c.Method, want.Method)
	}
	if want.Thumbprint == "" || c.Thumbprint != want.Thumbprint {
		return refuse(MismatchKey, "the challenge was issued to another DPoP key")
	}
	// The same comparison as the server's: now at or after exp is expired.
	if want.Now.Unix() >= c.Expires {
		return refuse(MismatchExpired, "expired at %s", time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	// No server issues a challenge for longer than MaxChallengeTTL: one
	// that expires later would keep the client answering, and waiting on
	// an approval, for as long as the server likes.
	if latest := want.Now.Add(MaxChallengeTTL + challengeClockSkew); c.Expires > latest.Unix() {
		return refuse(MismatchExpired, "expires at %s, later than %s from now (the longest challenge lifetime, with %s of clock skew)",
			time.Unix(c.Expires, 0).UTC().Format(time.RFC3339), MaxChallengeTTL, challengeClockSkew)
	}
	if c.Digest != "" {
		if want.Request == nil {
			return refuse(MismatchRequest, "the challenge is bound to a request and the call has none")
		}
		dig, err := RequestDigest(want.Method, want.Request)
		if err != nil {
			return refuse(MismatchRequest, "the request cannot be digested: %v", err)
		}
		if dig != c.Digest {
			return refuse(MismatchRequest, "the challenge is bound to another request")
		}
	}
	var items []*stepupv1.SummaryItem
	if want.Request != nil {
		items = want.Display.Summarize(want.Request)
	}
	if !slices.EqualFunc(items, ch.GetSummary(), func(a, b *stepupv1.SummaryItem) bool { return proto.Equal(a, b) }) ||
		ch.GetSummaryText() != SummaryText(want.Method, items) {
		return refuse(MismatchSummary, "%s", summaryMismatch(ch, SummaryText(want.Method, items), len(items)))
	}
	return nil
}

// summaryMismatch says how the server's summary and the client's differ:
// both renderings, and the usual cause when the request itself agrees.
func summaryMismatch(ch *stepupv1.StepUpChallenge, mine string, myItems int) string {
	msg := fmt.Sprintf("the summary shown is not that of this request: the server rendered %q (%d items, from its descriptors), this client renders %q (%d items, from its own)",
		clean(ch.GetSummaryText()), len(ch.GetSummary()), mine, myItems)
	if ch.GetBoundToRequest() {
		// The digest matched (it is checked first): same request, another
		// rendering.
		msg += "; the request digest matches, so the two sides display different fields:" +
			" the server's and the client's .proto display options (or display declarations) differ"
	} else {
		msg += "; if the request is the same, the two sides' display options (or display declarations) differ"
	}
	return msg
}

// unverifiedPayload decodes the payload of a compact JWS whose header is a
// stepup-challenge+jwt header, without its MAC.
func unverifiedPayload(token string) ([]byte, bool) {
	if len(token) > maxTokenSize {
		return nil, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	if _, ok := readHeader(parts[0], ChallengeType); !ok {
		return nil, false
	}
	p, err := base64url.DecodeString(parts[1])
	return p, err == nil
}

// displayed returns the first displayed field of ch that disagrees with
// the signed claims c, "" when none.
func displayed(ch *stepupv1.StepUpChallenge, c *challengeClaims) string {
	if e := ch.GetExpiresAt(); e == nil || e.GetSeconds() != c.Expires {
		return "expires_at"
	}
	if len(ch.GetFactors()) == 0 || slices.ContainsFunc(ch.GetFactors(), func(f stepupv1.Factor) bool {
		return !slices.Contains(c.Factors, FactorName(f))
	}) {
		return "factors"
	}
	if !slices.Equal(ch.GetAcrValues(), c.ACR) && (len(ch.GetAcrValues()) > 0 || len(c.ACR) > 0) {
		return "acr_values"
	}
	if int64(ch.GetMaxAge().AsDuration()/time.Second) != c.MaxAge {
		return "max_age"
	}
	if ch.GetBoundToRequest() != (c.Digest != "") {
		return "bound_to_request"
	}
	if ch.GetApprovalId() != "" || ch.GetMatchingCode() != "" || c.SummaryDigest != "" {
		// An approval: the page lists it under this id, with this code and
		// this summary's digest; the client shows what it computes itself.
		if ch.GetApprovalId() != c.ID || ch.GetMatchingCode() != MatchingCode(ch.GetChallenge()) ||
			c.SummaryDigest != SummaryDigest(ch.GetSummaryText()) || !slices.Contains(c.Factors, factorNameApproval) {
			return "approval_id, matching_code or summary digest"
		}
	}
	return ""
}

// challengeClockSkew is how far ahead of the client's clock a server's may
// be when CheckChallenge bounds a challenge's expiry.
const challengeClockSkew = 5 * time.Minute
