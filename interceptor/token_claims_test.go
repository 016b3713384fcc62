package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/interceptor"
)

// verifyClaims mints a token for alice from e's issuer with claims edited
// by edit, verifies it with e's JWTVerifier, and returns the result.
func verifyClaims(t *testing.T, e *env, edit func(c map[string]any)) (*interceptor.Token, error) {
	t.Helper()
	c := atkTokenClaims(e)
	edit(c)
	return e.jwt.VerifyToken(context.Background(), atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey()))
}

func wantTokenReason(t *testing.T, err error, want interceptor.Reason) {
	t.Helper()
	var te *interceptor.TokenError
	if !errors.As(err, &te) || te.Reason != want {
		t.Fatalf("err = %v, want reason %s", err, want)
	}
}

// TestScopeTokens: every form of the scopes (scope string, scp string, scp
// array) refuses a scope token with a character outside RFC 6749 §3.3
// (%x21 / %x23-5B / %x5D-7E), with TOKEN_INVALID_CLAIMS: one scope to the
// Guard must be one scope to whoever reads the gateway assertion's scope
// after it, however that reader splits on white space. Runs of spaces
// separate, nothing else does.
func TestScopeTokens(t *testing.T) {
	e := newEnv(t, envOpts{})
	bad := map[string]string{
		"LF": "\n", "CR": "\r", "tab": "\t", "vertical tab": "\v", "form feed": "\f", "NUL": "\x00",
		"DEL": "\x7f", "U+0085": "\u0085", "U+00A0": "\u00a0", "U+2028": "\u2028", "quote": `"`,
		"backslash": `\`, "é": "é",
	}
	forms := map[string]func(scopes ...string) (string, any){
		"scope string": func(s ...string) (string, any) { return "scope", strings.Join(s, " ") },
		"scp string":   func(s ...string) (string, any) { return "scp", strings.Join(s, " ") },
		"scp array":    func(s ...string) (string, any) { return "scp", s },
	}
	for form, build := range forms {
		for name, ch := range bad {
			t.Run(form+" with "+name, func(t *testing.T) {
				_, err := verifyClaims(t, e, func(c map[string]any) {
					delete(c, "scope")
					k, v := build("guarded", "x"+ch+"admin")
					c[k] = v
				})
				wantTokenReason(t, err, interceptor.ReasonTokenInvalidClaims)
			})
		}
		t.Run(form+": every scope-token character", func(t *testing.T) {
			var all strings.Builder
			for c := byte(0x21); c <= 0x7e; c++ {
				if c != '"' && c != '\\' {
					all.WriteByte(c)
				}
			}
			tok, err := verifyClaims(t, e, func(c map[string]any) {
				delete(c, "scope")
				k, v := build("guarded", all.String())
				c[k] = v
			})
			if err != nil || len(tok.Scopes) != 2 || tok.Scopes[1] != all.String() {
				t.Fatalf("token %+v, %v", tok, err)
			}
		})
	}
	t.Run("runs of spaces separate", func(t *testing.T) {
		tok, err := verifyClaims(t, e, func(c map[string]any) { c["scope"] = "  a  b " })
		if err != nil || strings.Join(tok.Scopes, ",") != "a,b" {
			t.Fatalf("token %+v, %v", tok, err)
		}
	})
	t.Run("an empty scp element", func(t *testing.T) {
		_, err := verifyClaims(t, e, func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"a", ""} })
		wantTokenReason(t, err, interceptor.ReasonTokenInvalidClaims)
	})
	if err := interceptor.CheckScopes([]string{"a", "b:c", "!#$%&'()*+,-./[]^_`{|}~"}); err != nil {
		t.Errorf("CheckScopes of scope tokens: %v", err)
	}
}

// TestAuthTime: auth_time is a NumericDate between 0 and year 9999, not
// after now beyond the leeway (30 s): a float beyond int64 converts to an
// unspecified time (fresh on some platforms), and an auth_time to come is
// fresh under any max_age.
func TestAuthTime(t *testing.T) {
	e := newEnv(t, envOpts{})
	now := e.clock.Now()
	for _, tc := range []struct {
		name string
		v    any
		ok   bool
		want time.Time
	}{
		{"now", now.Unix(), true, now},
		{"a fraction of a second", float64(now.Unix()) + 0.5, true, now.Add(500 * time.Millisecond)},
		{"within the leeway", now.Add(30 * time.Second).Unix(), true, now.Add(30 * time.Second)},
		{"beyond the leeway", now.Add(31 * time.Second).Unix(), false, time.Time{}},
		{"an hour ahead", now.Add(time.Hour).Unix(), false, time.Time{}},
		{"1e19", 1e19, false, time.Time{}},
		{"1e300", 1e300, false, time.Time{}},
		{"negative", -1, false, time.Time{}},
		{"after year 9999", 253402300800, false, time.Time{}},
		{"a string", "1800000000", false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := verifyClaims(t, e, func(c map[string]any) { c["auth_time"] = tc.v })
			if !tc.ok {
				wantTokenReason(t, err, interceptor.ReasonTokenInvalidClaims)
				return
			}
			if err != nil || !tok.AuthTime.Equal(tc.want) {
				t.Fatalf("token %+v, %v; want auth_time %s", tok, err, tc.want)
			}
		})
	}
}

// TestConfirmationMethods: cnf must hold jkt and nothing else (RFC 7800
// §3.1): a token bound by a method the Guard cannot check (x5t#S256 of RFC
// 8705, a jwk, a kid) is refused, never taken for a bearer token.
func TestConfirmationMethods(t *testing.T) {
	e := newEnv(t, envOpts{})
	jkt := e.signer.Thumbprint()
	for _, tc := range []struct {
		name string
		cnf  any
		ok   bool
	}{
		{"jkt", map[string]any{"jkt": jkt}, true},
		{"no cnf", nil, true},
		{"empty", map[string]any{}, false},
		{"x5t#S256", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, false},
		{"jwk", map[string]any{"jwk": atkPublicJWK(e)}, false},
		{"kid", map[string]any{"kid": "dfd1aa97-6d8d-4575-a0fe-34b96de2bfad"}, false},
		{"jku", map[string]any{"jku": "https://client.example/jwks"}, false},
		{"jkt and x5t#S256", map[string]any{"jkt": jkt, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, false},
		{"not an object", "jkt", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := verifyClaims(t, e, func(c map[string]any) {
				delete(c, "cnf")
				if tc.cnf != nil {
					c["cnf"] = tc.cnf
				}
			})
			if !tc.ok {
				wantTokenReason(t, err, interceptor.ReasonTokenInvalidClaims)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.cnf != nil && tok.JKT != jkt {
				t.Fatalf("jkt %q", tok.JKT)
			}
		})
	}
}

// TestGuardChecksEveryVerifiersClaims: the Guard applies the same claim
// checks to what any TokenVerifier returns (an introspecting one, say), so
// a verifier that passes a scope with a line break, an auth_time to come or
// an unchecked confirmation method through does not open the door.
func TestGuardChecksEveryVerifiersClaims(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(e *env, tok *interceptor.Token)
		want refusal
	}{
		{"control: a well-formed token", func(*env, *interceptor.Token) {}, atkAllowed},
		{"a scope with a line feed", func(_ *env, tok *interceptor.Token) { tok.Scopes = append(tok.Scopes, "x\nadmin") },
			atkToken(interceptor.ReasonTokenInvalidClaims)},
		{"an empty scope", func(_ *env, tok *interceptor.Token) { tok.Scopes = append(tok.Scopes, "") },
			atkToken(interceptor.ReasonTokenInvalidClaims)},
		{"auth_time an hour ahead", func(e *env, tok *interceptor.Token) { tok.AuthTime = e.clock.Now().Add(time.Hour) },
			atkToken(interceptor.ReasonTokenInvalidClaims)},
		{"cnf with x5t#S256", func(_ *env, tok *interceptor.Token) {
			tok.Claims["cnf"] = map[string]any{"jkt": tok.JKT, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
		}, atkToken(interceptor.ReasonTokenInvalidClaims)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *env
			verifier := interceptor.TokenVerifierFunc(func(ctx context.Context, raw string) (*interceptor.Token, error) {
				tok, err := e.jwt.VerifyToken(ctx, raw)
				if err == nil {
					tc.edit(e, tok)
				}
				return tok, err
			})
			e = newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithTokenVerifier(verifier)}})
			p := atkAlice(e)
			runAtk(t, e, func() error { return atkDo(p.ctx(t, mPlain), e, mPlain) }, tc.want)
		})
	}
}

// TestTokenKeySelection: the signature is verified with the header's
// algorithm, by keys whose "alg" is absent or that algorithm, of the type
// the algorithm is for, meant for signatures, and named by the header's
// kid when the set has that kid.
func TestTokenKeySelection(t *testing.T) {
	rsaKey := atkRSAIssuerKey()
	e := newEnv(t, envOpts{})
	ecKey := e.issuer.PrivateKey()
	rsaJWK := func(kid, alg, use string) map[string]string {
		k := map[string]string{"kty": "RSA", "kid": kid, "n": b64u.EncodeToString(rsaKey.N.Bytes()), "e": "AQAB"}
		if alg != "" {
			k["alg"] = alg
		}
		if use != "" {
			k["use"] = use
		}
		return k
	}
	ecJWK := func(kid string) map[string]any {
		k := atkPublicJWKOf(&ecKey.PublicKey)
		k["kid"] = kid
		return k
	}
	for _, tc := range []struct {
		name       string
		keys       []any
		algs       []string
		kid, label string
		sig        string // RS256, PS256, RS512 with rsaKey; ES256 with the issuer's EC key
		want       interceptor.Reason
	}{
		{"RS256 key, RS256 token", []any{rsaJWK("r", "RS256", "sig")}, nil, "r", "RS256", "RS256", ""},
		{"key without alg, PS256 token", []any{rsaJWK("r", "", "")}, []string{"PS256"}, "r", "PS256", "PS256", ""},
		{"key without alg, PS256 label, RS256 signature", []any{rsaJWK("r", "", "")}, []string{"PS256"}, "r", "PS256", "RS256",
			interceptor.ReasonTokenBadSignature},
		{"RS256 key, PS256 label, RS256 signature", []any{rsaJWK("r", "RS256", "")}, []string{"PS256"}, "r", "PS256", "RS256",
			interceptor.ReasonTokenBadSignature},
		{"RS512 key, RS256 label, RS512 signature", []any{rsaJWK("r", "RS512", "")}, nil, "r", "RS256", "RS512",
			interceptor.ReasonTokenBadSignature},
		{"RS512 key, RS512 token, RS512 not allowed", []any{rsaJWK("r", "RS512", "")}, nil, "r", "RS512", "RS512",
			interceptor.ReasonTokenBadAlgorithm},
		{"an encryption key", []any{rsaJWK("r", "RS256", "enc")}, nil, "r", "RS256", "RS256", interceptor.ReasonTokenBadSignature},
		{"kid of an EC key, signed by the RSA key of another kid", []any{ecJWK("e"), rsaJWK("r", "RS256", "")}, nil, "e", "RS256", "RS256",
			interceptor.ReasonTokenBadSignature},
		{"unknown kid: every key of the right type is tried", []any{ecJWK("e"), rsaJWK("r", "RS256", "")}, nil, "x", "RS256", "RS256", ""},
		{"EC key, ES256 token", []any{ecJWK("e"), rsaJWK("r", "RS256", "")}, nil, "e", "ES256", "ES256", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
				Issuer: testIssuer, Audience: testAudience, Algorithms: tc.algs, Clock: e.clock.Now,
				JWKS: atkJSON(t, map[string]any{"keys": tc.keys}),
			})
			if err != nil {
				t.Fatal(err)
			}
			var tok string
			if tc.sig == "ES256" {
				h := atkTokenHeader()
				h["kid"] = tc.kid
				tok = atkSignToken(t, h, atkTokenClaims(e), ecKey)
			} else {
				tok = atkRSASignedKid(t, e, tc.kid, tc.label, tc.sig)
			}
			_, err = v.VerifyToken(context.Background(), tok)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantTokenReason(t, err, tc.want)
		})
	}
}

// atkPublicJWKOf is the public JWK of an EC key as a map.
func atkPublicJWKOf(k *ecdsa.PublicKey) map[string]any {
	return map[string]any{"kty": "EC", "crv": "P-256",
		"x": b64u.EncodeToString(k.X.FillBytes(make([]byte, 32))), "y": b64u.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
}
