package challenge

import (
	"crypto/rand"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Factor names as they appear in tokens and answers.
const (
	factorNameTOTP      = "totp"
	factorNameDeviceKey = "device_key"
	factorNameWebAuthn  = "webauthn"
	factorNameApproval  = "approval"
)

// FactorName returns the name of a factor in tokens and answers: "totp",
// "device_key", "webauthn" or "approval"; "" for anything else.
func FactorName(f stepupv1.Factor) string {
	switch f {
	case stepupv1.Factor_FACTOR_TOTP:
		return factorNameTOTP
	case stepupv1.Factor_FACTOR_DEVICE_KEY:
		return factorNameDeviceKey
	case stepupv1.Factor_FACTOR_WEBAUTHN:
		return factorNameWebAuthn
	case stepupv1.Factor_FACTOR_APPROVAL:
		return factorNameApproval
	}
	return ""
}

// ParseFactorName is the inverse of FactorName; it returns
// FACTOR_UNSPECIFIED for an unknown name.
func ParseFactorName(name string) stepupv1.Factor {
	switch name {
	case factorNameTOTP:
		return stepupv1.Factor_FACTOR_TOTP
	case factorNameDeviceKey:
		return stepupv1.Factor_FACTOR_DEVICE_KEY
	case factorNameWebAuthn:
		return stepupv1.Factor_FACTOR_WEBAUTHN
	case factorNameApproval:
		return stepupv1.Factor_FACTOR_APPROVAL
	}
	return stepupv1.Factor_FACTOR_UNSPECIFIED
}

// newID returns 128 random bits, base64url: unguessable token ids
// (challenge jti, grant jti).
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64url.EncodeToString(b[:]), nil
}

var errClaims = strictjson.ErrMembers

// readClaims reads a JSON object of claims with the strict parser
// (strictjson.ReadMembers).
func readClaims(b []byte, required uint16, member func(name string, v strictjson.Value) (bit uint16, ok bool)) error {
	return strictjson.ReadMembers(b, required, member)
}

// tokenClaims are the claims that challenges and grants both carry, each
// required.
type tokenClaims struct {
	ID         string // jti: 128-bit random, base64url
	Subject    string // sub
	Thumbprint string // jkt: RFC 7638 thumbprint of the client's DPoP key
	IssuedAt   int64  // iat
	Expires    int64  // exp
}

// The bits readClaims collects for the claims of tokenClaims; the claims of
// one kind of token use the bits from claimOwn on.
const (
	claimJTI uint16 = 1 << iota
	claimSub
	claimJKT
	claimIAT
	claimExp
	claimOwn

	claimsShared = claimJTI | claimSub | claimJKT | claimIAT | claimExp
)

// read reads one member for readClaims; names other than jti, sub, jkt, iat
// and exp are unknown.
func (t *tokenClaims) read(name string, v strictjson.Value) (uint16, bool) {
	var ok bool
	switch name {
	case "jti":
		t.ID, ok = v.Str()
		return claimJTI, ok && t.ID != ""
	case "sub":
		t.Subject, ok = v.Str()
		return claimSub, ok
	case "jkt":
		t.Thumbprint, ok = v.Str()
		return claimJKT, ok
	case "iat":
		t.IssuedAt, ok = v.Int()
		return claimIAT, ok
	case "exp":
		t.Expires, ok = v.Int()
		return claimExp, ok
	}
	return 0, true
}

// encode writes the claims of a token in their fixed order: jti, sub, jkt,
// the members own writes, iat, exp.
func (t *tokenClaims) encode(own func(w *jsonWriter)) []byte {
	var w jsonWriter
	w.str("jti", t.ID)
	w.str("sub", t.Subject)
	w.str("jkt", t.Thumbprint)
	own(&w)
	w.int("iat", t.IssuedAt)
	w.int("exp", t.Expires)
	return w.bytes()
}

// challengeClaims are the claims of a stepup-challenge+jwt.
type challengeClaims struct {
	tokenClaims
	Method  string   // mth: "/pkg.Service/Method"
	Digest  string   // dig: RequestDigest, "" when not bound
	ACR     []string // acr: acr values that would also satisfy (RFC 9470)
	Factors []string // fac: factor names allowed
	MaxAge  int64    // mxa: seconds a grant would last; 0 for none
	// SummaryDigest is sdg: SummaryDigest of the summary text, present when
	// the challenge allows an out-of-band approval (what the approver page
	// shows, and what the approval's passkey signature covers).
	SummaryDigest string
}

func (c *challengeClaims) encode() []byte {
	return c.tokenClaims.encode(func(w *jsonWriter) {
		w.str("mth", c.Method)
		if c.Digest != "" {
			w.str("dig", c.Digest)
		}
		w.strs("acr", c.ACR)
		w.strs("fac", c.Factors)
		w.int("mxa", c.MaxAge)
		if c.SummaryDigest != "" {
			w.str("sdg", c.SummaryDigest)
		}
	})
}

// parseChallengeClaims reads the claims of a challenge whose MAC verified.
// Every claim but dig and sdg is required; unknown claims are ignored.
func parseChallengeClaims(b []byte) (*challengeClaims, error) {
	var c challengeClaims
	const (
		claimMth = claimOwn << iota
		claimACR
		claimFac
		claimMxa
	)
	err := readClaims(b, claimsShared|claimMth|claimACR|claimFac|claimMxa, func(name string, v strictjson.Value) (uint16, bool) {
		var ok bool
		switch name {
		case "mth":
			c.Method, ok = v.Str()
			return claimMth, ok
		case "dig":
			c.Digest, ok = v.Str()
			return 0, ok
		case "acr":
			c.ACR, ok = v.Strings()
			return claimACR, ok
		case "fac":
			c.Factors, ok = v.Strings()
			return claimFac, ok
		case "mxa":
			c.MaxAge, ok = v.Int()
			return claimMxa, ok && c.MaxAge >= 0
		case "sdg":
			c.SummaryDigest, ok = v.Str()
			return 0, ok
		}
		return c.tokenClaims.read(name, v)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// grantClaims are the claims of a stepup-grant+jwt; its exp is auth_time
// plus the max age.
type grantClaims struct {
	tokenClaims
	Factor   string // fac: the factor name that earned the grant
	AuthTime int64  // auth_time: when the factor was verified
}

func (g *grantClaims) encode() []byte {
	return g.tokenClaims.encode(func(w *jsonWriter) {
		w.str("fac", g.Factor)
		w.int("auth_time", g.AuthTime)
	})
}

// parseGrantClaims reads the claims of a grant whose MAC verified. Every
// claim is required; unknown claims are ignored.
func parseGrantClaims(b []byte) (*grantClaims, error) {
	var g grantClaims
	const (
		claimFac = claimOwn << iota
		claimAuthTime
	)
	err := readClaims(b, claimsShared|claimFac|claimAuthTime, func(name string, v strictjson.Value) (uint16, bool) {
		var ok bool
		switch name {
		case "fac":
			g.Factor, ok = v.Str()
			return claimFac, ok
		case "auth_time":
			g.AuthTime, ok = v.Int()
			return claimAuthTime, ok
		}
		return g.tokenClaims.read(name, v)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// answerPayload is the payload of a stepup-answer+jwt.
type answerPayload struct {
	Challenge string // chl: the challenge JWS, unchanged
	Factor    string // fac: factor name
	TOTP      string // otp: when fac is "totp"
	Device    string // dev: device evidence JWS, when fac is "device_key"
	WebAuthn  string // wan: assertion JSON object, when fac is "webauthn"
	Approval  string // apr: the approval id, when fac is "approval"
	IssuedAt  int64  // iat: the client's clock; informational
}

// parseAnswerPayload reads an answer payload: chl, fac and iat are required,
// and exactly the one evidence member that fac names must be present (an
// answer carrying two kinds of evidence is ambiguous and refused).
func parseAnswerPayload(b []byte) (*answerPayload, error) {
	var a answerPayload
	var evidence int
	err := readClaims(b, 7, func(name string, v strictjson.Value) (uint16, bool) {
		var ok bool
		switch name {
		case "chl":
			a.Challenge, ok = v.Str()
			return 1, ok
		case "fac":
			a.Factor, ok = v.Str()
			return 2, ok
		case "iat":
			a.IssuedAt, ok = v.Int()
			return 4, ok
		case "otp":
			a.TOTP, ok = v.Str()
		case "dev":
			a.Device, ok = v.Str()
		case "wan":
			a.WebAuthn, ok = v.Raw(), v.Kind() == strictjson.Object
		case "apr":
			a.Approval, ok = v.Str()
		default:
			return 0, true
		}
		evidence++
		return 0, ok
	})
	if err != nil {
		return nil, err
	}
	if evidence != 1 || a.Challenge == "" {
		return nil, errClaims
	}
	switch a.Factor {
	case factorNameTOTP:
		if a.TOTP == "" {
			return nil, errClaims
		}
	case factorNameDeviceKey:
		if a.Device == "" {
			return nil, errClaims
		}
	case factorNameWebAuthn:
		if a.WebAuthn == "" {
			return nil, errClaims
		}
	case factorNameApproval:
		if a.Approval == "" {
			return nil, errClaims
		}
	}
	// An unknown factor name is not malformed: it is refused as a factor
	// that is not allowed.
	return &a, nil
}
