package challenge

import (
	"crypto/rand"
	"errors"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Factor names as they appear in tokens and answers.
const (
	factorNameTOTP      = "totp"
	factorNameDeviceKey = "device_key"
	factorNameWebAuthn  = "webauthn"
)

// FactorName returns the name of a factor in tokens and answers: "totp",
// "device_key" or "webauthn"; "" for anything else.
func FactorName(f stepupv1.Factor) string {
	switch f {
	case stepupv1.Factor_FACTOR_TOTP:
		return factorNameTOTP
	case stepupv1.Factor_FACTOR_DEVICE_KEY:
		return factorNameDeviceKey
	case stepupv1.Factor_FACTOR_WEBAUTHN:
		return factorNameWebAuthn
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
	return b64.EncodeToString(b[:]), nil
}

var errClaims = errors.New("missing or ill-typed claim")

// challengeClaims are the claims of a stepup-challenge+jwt.
type challengeClaims struct {
	ID         string   // jti: 128-bit random, base64url
	Subject    string   // sub
	Thumbprint string   // jkt: RFC 7638 thumbprint of the client's DPoP key
	Method     string   // mth: "/pkg.Service/Method"
	Digest     string   // dig: RequestDigest, "" when not bound
	ACR        []string // acr: acr values that would also satisfy (RFC 9470)
	Factors    []string // fac: factor names allowed
	MaxAge     int64    // mxa: seconds a grant would last; 0 for none
	IssuedAt   int64    // iat
	Expires    int64    // exp
}

func (c *challengeClaims) encode() []byte {
	var w jsonWriter
	w.str("jti", c.ID)
	w.str("sub", c.Subject)
	w.str("jkt", c.Thumbprint)
	w.str("mth", c.Method)
	if c.Digest != "" {
		w.str("dig", c.Digest)
	}
	w.strs("acr", c.ACR)
	w.strs("fac", c.Factors)
	w.int("mxa", c.MaxAge)
	w.int("iat", c.IssuedAt)
	w.int("exp", c.Expires)
	return w.bytes()
}

// parseChallengeClaims reads the claims of a challenge whose MAC verified.
// Every claim but dig is required; unknown claims are ignored.
func parseChallengeClaims(b []byte) (*challengeClaims, error) {
	var c challengeClaims
	var seen uint16
	err := parseJSONObject(string(b), func(name string, v jsonValue) error {
		var ok bool
		var bit uint16
		switch name {
		case "jti":
			c.ID, ok = v.str()
			ok, bit = ok && c.ID != "", 1
		case "sub":
			c.Subject, ok = v.str()
			bit = 2
		case "jkt":
			c.Thumbprint, ok = v.str()
			bit = 4
		case "mth":
			c.Method, ok = v.str()
			bit = 8
		case "dig":
			c.Digest, ok = v.str()
		case "acr":
			c.ACR, ok = v.strings()
			bit = 16
		case "fac":
			c.Factors, ok = v.strings()
			bit = 32
		case "mxa":
			c.MaxAge, ok = v.int()
			ok, bit = ok && c.MaxAge >= 0, 64
		case "iat":
			c.IssuedAt, ok = v.int()
			bit = 128
		case "exp":
			c.Expires, ok = v.int()
			bit = 256
		default:
			return nil
		}
		if !ok {
			return errClaims
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seen != 511 {
		return nil, errClaims
	}
	return &c, nil
}

// grantClaims are the claims of a stepup-grant+jwt.
type grantClaims struct {
	ID         string // jti
	Subject    string // sub
	Thumbprint string // jkt
	Factor     string // fac: the factor name that earned the grant
	AuthTime   int64  // auth_time: when the factor was verified
	IssuedAt   int64  // iat
	Expires    int64  // exp = auth_time + max age
}

func (g *grantClaims) encode() []byte {
	var w jsonWriter
	w.str("jti", g.ID)
	w.str("sub", g.Subject)
	w.str("jkt", g.Thumbprint)
	w.str("fac", g.Factor)
	w.int("auth_time", g.AuthTime)
	w.int("iat", g.IssuedAt)
	w.int("exp", g.Expires)
	return w.bytes()
}

// parseGrantClaims reads the claims of a grant whose MAC verified. Every
// claim is required; unknown claims are ignored.
func parseGrantClaims(b []byte) (*grantClaims, error) {
	var g grantClaims
	var seen uint8
	err := parseJSONObject(string(b), func(name string, v jsonValue) error {
		var ok bool
		var bit uint8
		switch name {
		case "jti":
			g.ID, ok = v.str()
			ok, bit = ok && g.ID != "", 1
		case "sub":
			g.Subject, ok = v.str()
			bit = 2
		case "jkt":
			g.Thumbprint, ok = v.str()
			bit = 4
		case "fac":
			g.Factor, ok = v.str()
			bit = 8
		case "auth_time":
			g.AuthTime, ok = v.int()
			bit = 16
		case "iat":
			g.IssuedAt, ok = v.int()
			bit = 32
		case "exp":
			g.Expires, ok = v.int()
			bit = 64
		default:
			return nil
		}
		if !ok {
			return errClaims
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seen != 127 {
		return nil, errClaims
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
	IssuedAt  int64  // iat: the client's clock; informational
}

// parseAnswerPayload reads an answer payload: chl, fac and iat are required,
// and exactly the one evidence member that fac names must be present (an
// answer carrying two kinds of evidence is ambiguous and refused).
func parseAnswerPayload(b []byte) (*answerPayload, error) {
	var a answerPayload
	var seen, evidence int
	err := parseJSONObject(string(b), func(name string, v jsonValue) error {
		var ok bool
		switch name {
		case "chl":
			a.Challenge, ok = v.str()
			seen |= 1
		case "fac":
			a.Factor, ok = v.str()
			seen |= 2
		case "iat":
			a.IssuedAt, ok = v.int()
			seen |= 4
		case "otp":
			a.TOTP, ok = v.str()
			evidence++
		case "dev":
			a.Device, ok = v.str()
			evidence++
		case "wan":
			a.WebAuthn, ok = v.raw, v.kind == kindObject
			evidence++
		default:
			return nil
		}
		if !ok {
			return errClaims
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seen != 7 || evidence != 1 || a.Challenge == "" {
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
	}
	// An unknown factor name is not malformed: it is refused as a factor
	// that is not allowed.
	return &a, nil
}

// devicePayload is the payload of a stepup-device+jwt.
type devicePayload struct {
	ChallengeHash string // chh: base64url(SHA-256(challenge JWS))
	IssuedAt      int64  // iat: the device's clock; informational
}

// parseDevicePayload reads device evidence: chh and iat are required.
func parseDevicePayload(b []byte) (*devicePayload, error) {
	var d devicePayload
	var seen int
	err := parseJSONObject(string(b), func(name string, v jsonValue) error {
		var ok bool
		switch name {
		case "chh":
			d.ChallengeHash, ok = v.str()
			seen |= 1
		case "iat":
			d.IssuedAt, ok = v.int()
			seen |= 2
		default:
			return nil
		}
		if !ok {
			return errClaims
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seen != 3 {
		return nil, errClaims
	}
	return &d, nil
}
