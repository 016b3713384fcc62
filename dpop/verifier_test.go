package dpop_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

type vectorFile struct {
	RFC9449JWK json.RawMessage `json:"rfc9449_jwk"`
	RFC9449JKT string          `json:"rfc9449_jkt"`
	Proofs     []struct {
		Name        string `json:"name"`
		Proof       string `json:"proof"`
		HTM         string `json:"htm"`
		HTU         string `json:"htu"`
		Authority   string `json:"authority"`
		Path        string `json:"path"`
		IAT         int64  `json:"iat"`
		JTI         string `json:"jti"`
		AccessToken string `json:"access_token"`
		ATH         string `json:"ath"`
	} `json:"proofs"`
	RFC7638 struct {
		JWK        json.RawMessage `json:"jwk"`
		Thumbprint string          `json:"thumbprint"`
	} `json:"rfc7638"`
	Nonce string `json:"rfc9449_nonce"`
}

func loadVectors(tb testing.TB) vectorFile {
	tb.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestRFCVectors verifies the RFC 9449 §4.1 and §7.1 example proofs with a
// clock set to 2019, and checks that each is refused once replayed and when
// the clock has moved on.
func TestRFCVectors(t *testing.T) {
	vec := loadVectors(t)
	for _, p := range vec.Proofs {
		t.Run(p.Name, func(t *testing.T) {
			clock := newClock(time.Unix(p.IAT, 0).Add(2 * time.Second))
			v := newTestVerifier(t, clock, dpop.WithAuthorities(p.Authority))
			req := dpop.Request{
				Proof: p.Proof, Method: p.HTM, Path: p.Path,
				AccessToken: p.AccessToken, ExpectedJKT: vec.RFC9449JKT,
			}
			got, err := v.Verify(context.Background(), req)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Thumbprint != vec.RFC9449JKT || got.JTI != p.JTI || got.HTM != p.HTM ||
				got.HTU != p.HTU || got.ATH != p.ATH || got.Algorithm != "ES256" ||
				!got.IssuedAt.Equal(time.Unix(p.IAT, 0)) {
				t.Fatalf("proof = %+v", got)
			}
			if p.AccessToken != "" && dpop.ATH(p.AccessToken) != p.ATH {
				t.Fatalf("ATH(%q) = %q, want %q", p.AccessToken, dpop.ATH(p.AccessToken), p.ATH)
			}
			_, err = v.Verify(context.Background(), req)
			wantReason(t, err, dpop.ReasonReplayed)

			// A fresh verifier an hour later refuses it as too old.
			later := newTestVerifier(t, newClock(time.Unix(p.IAT, 0).Add(time.Hour)), dpop.WithAuthorities(p.Authority))
			_, err = later.Verify(context.Background(), req)
			wantReason(t, err, dpop.ReasonIssuedTooOld)

			// And today, with the real clock, likewise.
			today, err := dpop.NewVerifier(dpop.WithAuthorities(p.Authority))
			if err != nil {
				t.Fatal(err)
			}
			_, err = today.Verify(context.Background(), req)
			wantReason(t, err, dpop.ReasonIssuedTooOld)
		})
	}
}

func TestThumbprintVectors(t *testing.T) {
	vec := loadVectors(t)
	got, err := dpop.Thumbprint(vec.RFC9449JWK)
	if err != nil || got != vec.RFC9449JKT {
		t.Fatalf("Thumbprint(RFC 9449 key) = %q, %v; want %q", got, err, vec.RFC9449JKT)
	}
	got, err = dpop.Thumbprint(vec.RFC7638.JWK)
	if err != nil || got != vec.RFC7638.Thumbprint {
		t.Fatalf("Thumbprint(RFC 7638 key) = %q, %v; want %q", got, err, vec.RFC7638.Thumbprint)
	}
	// RFC 7638 §3: optional members do not change the thumbprint.
	var m map[string]any
	if err := json.Unmarshal(vec.RFC7638.JWK, &m); err != nil {
		t.Fatal(err)
	}
	m["use"] = "sig"
	m["kid"] = "another"
	m["alg"] = "PS256"
	m["key_ops"] = []string{"verify"}
	extra, _ := json.Marshal(m)
	if got, err := dpop.Thumbprint(extra); err != nil || got != vec.RFC7638.Thumbprint {
		t.Fatalf("Thumbprint with kid/alg/use = %q, %v", got, err)
	}
}

// goodProof is a valid ES256 proof for the test request with the given jti.
func goodProof(tb testing.TB, jti string, iat int64) string {
	keys(tb)
	return sign(tb, "ES256", ecKey, proofHeader(tb, "ES256", ecKey.Public()), claimsJSON(jti, iat))
}

// TestRefusals sends every attack of VECTORS.md (and more) and checks the
// exact reason; then checks that the refusal did not consume the jti: a
// valid proof with the same jti (and, where the attack used it, the same
// key) is still accepted.
func TestRefusals(t *testing.T) {
	keys(t)
	now := testNow.Unix()
	ecHeader := proofHeader(t, "ES256", ecKey.Public())
	ecJWK := jwkOf(t, ecKey.Public())
	privJWK := strings.TrimSuffix(ecJWK, "}") + `,"d":"` + b64.EncodeToString(ecKey.D.FillBytes(make([]byte, 32))) + `"}`
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	octJWK := `{"kty":"oct","k":"` + b64.EncodeToString(hmacKey) + `"}`
	bigPad := strings.Repeat("A", 9000)
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	otherThumb, _ := dpop.ThumbprintOf(rsaKey.Public())
	offCurve := `{"kty":"EC","crv":"P-256","x":"` + b64.EncodeToString(make([]byte, 32)) + `","y":"` + b64.EncodeToString(append(make([]byte, 31), 1)) + `"}`
	claims := func(jti, extra string) string {
		return strings.TrimSuffix(claimsJSON(jti, now), "}") + extra + "}"
	}

	type build func(jti string) (proof string, req dpop.Request)
	es := func(header, claims string) (string, dpop.Request) {
		p := sign(t, "ES256", ecKey, header, claims)
		return p, testRequest(p)
	}
	// broken is a good proof with its spelling changed by edit.
	broken := func(edit func(string) string) func(string) (string, dpop.Request) {
		return func(j string) (string, dpop.Request) {
			p := edit(goodProof(t, j, now))
			return p, testRequest(p)
		}
	}
	cases := []struct {
		name  string
		build build
		want  dpop.Reason
	}{
		// Header attacks.
		{"private d in jwk", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+privJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonPrivateKey},
		{"typ JWT", func(j string) (string, dpop.Request) {
			return es(`{"typ":"JWT","alg":"ES256","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadType},
		{"typ with media type prefix", func(j string) (string, dpop.Request) {
			return es(`{"typ":"application/dpop+jwt","alg":"ES256","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadType},
		{"typ missing", func(j string) (string, dpop.Request) {
			return es(`{"alg":"ES256","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadType},
		{"alg none, empty signature", func(j string) (string, dpop.Request) {
			p := sign(t, "none", nil, `{"typ":"dpop+jwt","alg":"none","jwk":`+ecJWK+`}`, claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonBadAlgorithm},
		{"alg none with an ES256 signature", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"none","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},
		{"alg HS256 with oct key", func(j string) (string, dpop.Request) {
			p := sign(t, "HS256", hmacKey, `{"typ":"dpop+jwt","alg":"HS256","jwk":`+octJWK+`}`, claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonBadAlgorithm},
		{"oct key under ES256", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+octJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonPrivateKey},
		{"unknown alg", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256K","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},
		{"RSA 1024", func(j string) (string, dpop.Request) {
			p := sign(t, "PS256", rsa1024, proofHeader(t, "PS256", rsa1024.Public()), claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonWeakKey},
		{"ES256 header with an Ed25519 key", func(j string) (string, dpop.Request) {
			p := sign(t, "EdDSA", edKey, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(t, edKey.Public())+`}`, claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonBadAlgorithm},
		{"EdDSA header with a P-256 key", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},
		{"ES384 header with a P-256 key", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES384","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},
		{"RS256 header with an EC key", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"RS256","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},
		{"RS256 header, PS256 signature", func(j string) (string, dpop.Request) {
			hdr := proofHeader(t, "RS256", rsaKey.Public())
			p := sign(t, "PS256", rsaKey, hdr, claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"PS256 header, RS256 signature", func(j string) (string, dpop.Request) {
			hdr := proofHeader(t, "PS256", rsaKey.Public())
			p := sign(t, "RS256", rsaKey, hdr, claimsJSON(j, now))
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"crit header", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","crit":["exp"],"exp":1,"jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadKey},
		{"jwk missing", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256"}`, claimsJSON(j, now))
		}, dpop.ReasonBadKey},
		{"jwk not an object", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":"`+b64.EncodeToString([]byte(ecJWK))+`"}`, claimsJSON(j, now))
		}, dpop.ReasonMalformed},
		{"EC point not on the curve", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+offCurve+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadKey},
		{"unsupported curve", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+strings.Replace(ecJWK, "P-256", "P-521", 1)+`}`, claimsJSON(j, now))
		}, dpop.ReasonBadKey},
		{"duplicate alg in header", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"none","alg":"ES256","jwk":`+ecJWK+`}`, claimsJSON(j, now))
		}, dpop.ReasonMalformed},
		{"duplicate member in jwk", func(j string) (string, dpop.Request) {
			return es(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+strings.Replace(ecJWK, `"kty":"EC"`, `"kty":"EC","kty":"EC"`, 1)+`}`, claimsJSON(j, now))
		}, dpop.ReasonMalformed},
		{"bad base64 in header", broken(func(p string) string { return "+" + p[1:] }), dpop.ReasonMalformed},
		{"padded base64", broken(func(p string) string {
			i := strings.IndexByte(p, '.')
			return p[:i] + "==" + p[i:]
		}), dpop.ReasonMalformed},
		// encoding/base64 skips CR and LF: the same proof spelled with a
		// line break would otherwise verify (in the signature segment,
		// which the signature does not cover) or reach the signature check.
		{"CR in the signature segment", broken(func(p string) string { return lineBreak(p, 2, "\r") }), dpop.ReasonMalformed},
		{"LF in the claims segment", broken(func(p string) string { return lineBreak(p, 1, "\n") }), dpop.ReasonMalformed},
		{"CRLF in the header segment", broken(func(p string) string { return lineBreak(p, 0, "\r\n") }), dpop.ReasonMalformed},

		// Shape and size.
		{"two segments", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			p = p[:strings.LastIndexByte(p, '.')]
			return p, testRequest(p)
		}, dpop.ReasonMalformed},
		{"four segments", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now) + ".AAAA"
			return p, testRequest(p)
		}, dpop.ReasonMalformed},
		{"proof over 8 KiB", func(j string) (string, dpop.Request) {
			return es(ecHeader, claims(j, `,"pad":"`+bigPad+`"`))
		}, dpop.ReasonTooLarge},

		// Claims.
		{"duplicate htm in claims", func(j string) (string, dpop.Request) {
			return es(ecHeader, claims(j, `,"htm":"GET"`))
		}, dpop.ReasonMalformed},
		{"duplicate claim through an escape", func(j string) (string, dpop.Request) {
			return es(ecHeader, claims(j, `,"ht\u006d":"POST"`))
		}, dpop.ReasonMalformed},
		{"deep JSON", func(j string) (string, dpop.Request) {
			return es(ecHeader, claims(j, `,"x":`+deep))
		}, dpop.ReasonMalformed},
		{"claims not JSON", func(j string) (string, dpop.Request) {
			return es(ecHeader, `{"jti":"`+j+`",`)
		}, dpop.ReasonMalformed},
		{"claims not an object", func(j string) (string, dpop.Request) {
			return es(ecHeader, `["`+j+`"]`)
		}, dpop.ReasonMalformed},
		{"iat is a string", func(j string) (string, dpop.Request) {
			return es(ecHeader, `{"jti":"`+j+`","htm":"POST","htu":"`+testHTU+`","iat":"`+itoa(now)+`","ath":"`+dpop.ATH(testToken)+`"}`)
		}, dpop.ReasonMalformed},
		{"iat missing", func(j string) (string, dpop.Request) {
			return es(ecHeader, `{"jti":"`+j+`","htm":"POST","htu":"`+testHTU+`","ath":"`+dpop.ATH(testToken)+`"}`)
		}, dpop.ReasonMalformed},
		{"htm missing", func(j string) (string, dpop.Request) {
			return es(ecHeader, `{"jti":"`+j+`","htu":"`+testHTU+`","iat":`+itoa(now)+`,"ath":"`+dpop.ATH(testToken)+`"}`)
		}, dpop.ReasonMalformed},
		{"invalid UTF-8", func(j string) (string, dpop.Request) {
			return es(ecHeader, claims(j, `,"x":"`+"\xff"+`"`))
		}, dpop.ReasonMalformed},

		// Signature.
		{"tampered signature", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			i := strings.LastIndexByte(p, '.')
			sig, _ := b64.DecodeString(p[i+1:])
			sig[10] ^= 0x01
			p = p[:i+1] + b64.EncodeToString(sig)
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"signature of another proof", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			q := goodProof(t, j+"-other", now)
			p = p[:strings.LastIndexByte(p, '.')] + q[strings.LastIndexByte(q, '.'):]
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"truncated signature", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			i := strings.LastIndexByte(p, '.')
			sig, _ := b64.DecodeString(p[i+1:])
			p = p[:i+1] + b64.EncodeToString(sig[:60])
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"empty signature", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			p = p[:strings.LastIndexByte(p, '.')+1]
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"tampered claims", func(j string) (string, dpop.Request) {
			p := goodProof(t, j, now)
			parts := strings.Split(p, ".")
			parts[1] = b64.EncodeToString([]byte(strings.Replace(claimsJSON(j, now), `"iat":`, `"iat":`, 1) + " "))
			p = strings.Join(parts, ".")
			return p, testRequest(p)
		}, dpop.ReasonBadSignature},
		{"signature from another key", func(j string) (string, dpop.Request) {
			return es(proofHeader(t, "ES256", ec384Key.Public()), claimsJSON(j, now))
		}, dpop.ReasonBadAlgorithm},

		// Request binding.
		{"iat far in the past", func(j string) (string, dpop.Request) {
			return es(ecHeader, claimsJSON(j, now-120))
		}, dpop.ReasonIssuedTooOld},
		{"iat in the future", func(j string) (string, dpop.Request) {
			return es(ecHeader, claimsJSON(j, now+60))
		}, dpop.ReasonIssuedInFuture},
		{"iat absurdly large", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), `"iat":`+itoa(now), `"iat":1e300`, 1))
		}, dpop.ReasonIssuedInFuture},
		{"htm for another method", func(j string) (string, dpop.Request) {
			p, r := es(ecHeader, claimsJSON(j, now))
			r.Method = "GET"
			return p, r
		}, dpop.ReasonBadMethod},
		{"htm lower case", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), `"POST"`, `"post"`, 1))
		}, dpop.ReasonBadMethod},
		{"htu for another authority", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), testAuthority, "evil.example.com", 1))
		}, dpop.ReasonBadURI},
		{"htu for another port", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), testAuthority, testAuthority+":8443", 1))
		}, dpop.ReasonBadURI},
		{"htu for another method path", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), "Transfer", "Balance", 1))
		}, dpop.ReasonBadURI},
		{"htu with query", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), testPath, testPath+"?a=1", 1))
		}, dpop.ReasonBadURI},
		{"htu with fragment", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), testPath, testPath+"#x", 1))
		}, dpop.ReasonBadURI},
		{"htu with userinfo", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), "https://", "https://"+testAuthority+"@", 1))
		}, dpop.ReasonBadURI},
		{"htu with dot segments", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), testPath, "/x/.."+testPath, 1))
		}, dpop.ReasonBadURI},
		{"htu over http", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), "https://", "http://", 1))
		}, dpop.ReasonBadURI},
		{"htu relative", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), "https://"+testAuthority, "", 1))
		}, dpop.ReasonBadURI},
		{"ath of another token", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), dpop.ATH(testToken), dpop.ATH(testToken+"x"), 1))
		}, dpop.ReasonBadATH},
		{"another token presented, ath of the token verified before", func(j string) (string, dpop.Request) {
			// The earlier cases left testToken's hash in the ath memo.
			p, r := es(ecHeader, claimsJSON(j, now))
			r.AccessToken = testToken[:len(testToken)-1] + "X"
			return p, r
		}, dpop.ReasonBadATH},
		{"ath missing with a token", func(j string) (string, dpop.Request) {
			return es(ecHeader, `{"jti":"`+j+`","htm":"POST","htu":"`+testHTU+`","iat":`+itoa(now)+`}`)
		}, dpop.ReasonBadATH},
		{"ath is the token itself", func(j string) (string, dpop.Request) {
			return es(ecHeader, strings.Replace(claimsJSON(j, now), dpop.ATH(testToken), testToken, 1))
		}, dpop.ReasonBadATH},
		{"token bound to another key", func(j string) (string, dpop.Request) {
			p, r := es(ecHeader, claimsJSON(j, now))
			r.ExpectedJKT = otherThumb
			return p, r
		}, dpop.ReasonKeyMismatch},
		{"empty proof", func(j string) (string, dpop.Request) {
			return "", testRequest("")
		}, dpop.ReasonMalformed},
	}

	clock := newClock(testNow)
	v := newTestVerifier(t, clock)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			jti := "refusal-jti-" + itoa(int64(1000+i)) + "-xyz"
			proof, req := tc.build(jti)
			_, err := v.Verify(context.Background(), req)
			wantReason(t, err, tc.want)
			var de *dpop.ProofError
			if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "dpop: "+string(tc.want)) {
				t.Fatalf("error %q is not a *dpop.ProofError with the reason prefix", err)
			}
			if strings.Contains(err.Error(), testToken) || (len(proof) > 20 && strings.Contains(err.Error(), proof[:20])) {
				t.Fatalf("error message leaks input: %q", err)
			}
			// The refusal must not have consumed the jti.
			if _, err := v.Verify(context.Background(), testRequest(goodProof(t, jti, testNow.Unix()))); err != nil {
				t.Fatalf("valid proof with the same jti refused after %q: %v", tc.name, err)
			}
		})
	}
}

func TestReplaySameProofTwice(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock)
	p := goodProof(t, "same-proof-twice-0001", testNow.Unix())
	if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	_, err := v.Verify(context.Background(), testRequest(p))
	wantReason(t, err, dpop.ReasonReplayed)
	if !errors.Is(err, dpop.ErrReplayed) || !errors.Is(err, &dpop.ProofError{Reason: dpop.ReasonReplayed}) {
		t.Fatalf("errors.Is fails on %v", err)
	}
	// Another key may use the same jti: the replay key is namespaced by
	// thumbprint.
	keys(t)
	other := sign(t, "EdDSA", edKey, proofHeader(t, "EdDSA", edKey.Public()), claimsJSON("same-proof-twice-0001", clock.Now().Unix()))
	if _, err := v.Verify(context.Background(), testRequest(other)); err != nil {
		t.Fatalf("same jti under another key: %v", err)
	}
}

// TestConcurrentReplay sends one proof from 64 goroutines: exactly one is
// accepted.
func TestConcurrentReplay(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock)
	p := goodProof(t, "concurrent-replay-0001", testNow.Unix())
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := v.Verify(context.Background(), testRequest(p))
			switch dpop.ReasonOf(err) {
			case "":
				ok.Add(1)
			case dpop.ReasonReplayed:
				replayed.Add(1)
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 63 {
		t.Fatalf("accepted %d, replayed %d; want 1 and 63", ok.Load(), replayed.Load())
	}
}

// TestFailClosedEviction floods a tiny replay store so that the first,
// still-valid proof is evicted, then replays it: it must be refused with
// DPOP_REPLAY_WINDOW, never accepted.
func TestFailClosedEviction(t *testing.T) {
	clock := newClock(testNow)
	store, err := dpop.NewMemoryReplayStore(8, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, clock, dpop.WithReplayStore(store))
	first := goodProof(t, "flood-victim-000001", clock.Now().Unix())
	if _, err := v.Verify(context.Background(), testRequest(first)); err != nil {
		t.Fatal(err)
	}
	// Flood: 32 valid proofs, one second apart, all still within the window.
	for i := range 32 {
		clock.Advance(time.Second)
		p := goodProof(t, "flood-"+itoa(int64(100000+i))+"-abcdef", clock.Now().Unix())
		if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
			t.Fatalf("flood proof %d: %v", i, err)
		}
	}
	if store.Len() != 8 {
		t.Fatalf("store holds %d entries, want 8", store.Len())
	}
	if f := store.Floor(); f.Before(testNow) || !f.Before(clock.Now()) {
		t.Fatalf("floor %v not in [start, now)", f)
	}
	// The victim is still inside the iat window (32s < 60s) but its entry
	// is gone: the store must refuse rather than accept it.
	_, err = v.Verify(context.Background(), testRequest(first))
	wantReason(t, err, dpop.ReasonReplayWindow)
	if !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("error %v does not wrap ErrEvicted", err)
	}
	// So is every flood proof that was evicted: none is ever accepted twice.
	// A fresh proof issued after the floor is accepted.
	fresh := goodProof(t, "after-the-flood-0001", clock.Now().Unix())
	if _, err := v.Verify(context.Background(), testRequest(fresh)); err != nil {
		t.Fatalf("fresh proof after the flood: %v", err)
	}
}

func TestStoreErrors(t *testing.T) {
	clock := newClock(testNow)
	down := errors.New("backend down")
	v := newTestVerifier(t, clock, dpop.WithReplayStore(dpop.ReplayStoreFunc(
		func(context.Context, string, time.Time, time.Time) error { return down })))
	_, err := v.Verify(context.Background(), testRequest(goodProof(t, "store-down-00000001", testNow.Unix())))
	wantReason(t, err, dpop.ReasonStoreUnavailable)
	if !errors.Is(err, down) {
		t.Fatalf("cause not wrapped: %v", err)
	}

	// A cancelled context is an unavailable store, not an acceptance.
	v = newTestVerifier(t, clock)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = v.Verify(ctx, testRequest(goodProof(t, "store-cancel-0000001", testNow.Unix())))
	wantReason(t, err, dpop.ReasonStoreUnavailable)
}

func TestNonceRequired(t *testing.T) {
	keys(t)
	clock := newClock(testNow)
	nonces, err := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, clock, dpop.WithNonces(nonces))
	if v.Nonces() != nonces {
		t.Fatal("Nonces() does not return the configured issuer")
	}
	s, err := dpop.NewSigner(ecKey, dpop.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := func(p string) dpop.Request { r := testRequest(p); return r }

	p, _ := s.Proof("POST", testHTU, testToken)
	_, err = v.Verify(ctx, req(p))
	wantReason(t, err, dpop.ReasonNonceRequired)
	var de *dpop.ProofError
	if !errors.As(err, &de) || !de.UseNonce() {
		t.Fatalf("UseNonce false for %v", err)
	}

	p, _ = s.ProofWithNonce("POST", testHTU, testToken, "not-the-nonce")
	_, err = v.Verify(ctx, req(p))
	wantReason(t, err, dpop.ReasonNonceInvalid)

	// The RFC 9449 §8 example nonce contains dots: it is opaque, and is
	// refused here only because it is not ours.
	vec := loadVectors(t)
	p, err = s.ProofWithNonce("POST", testHTU, testToken, vec.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, req(p))
	wantReason(t, err, dpop.ReasonNonceInvalid)

	// The client learns the nonce (as from dpop-nonce metadata) and retries.
	s.SetNonce("API.example.com:443", nonces.Current())
	p, _ = s.Proof("POST", testHTU, testToken)
	got, err := v.Verify(ctx, req(p))
	if err != nil {
		t.Fatal(err)
	}
	if got.Nonce != nonces.Current() {
		t.Fatalf("nonce = %q", got.Nonce)
	}
	// Refusals for nonce reasons did not consume the jti either.
	p, _ = s.ProofWithNonce("POST", testHTU, testToken, "")
	jti := jtiOf(t, p)
	_, err = v.Verify(ctx, req(p))
	wantReason(t, err, dpop.ReasonNonceRequired)
	retry := sign(t, "ES256", ecKey, proofHeader(t, "ES256", ecKey.Public()),
		strings.TrimSuffix(claimsJSON(jti, clock.Now().Unix()), "}")+`,"nonce":"`+nonces.Current()+`"}`)
	if _, err := v.Verify(ctx, req(retry)); err != nil {
		t.Fatalf("retry with the same jti: %v", err)
	}
}

func jtiOf(tb testing.TB, proof string) string {
	tb.Helper()
	parts := strings.Split(proof, ".")
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		tb.Fatal(err)
	}
	return c.JTI
}

func TestHTUNormalisation(t *testing.T) {
	keys(t)
	clock := newClock(testNow)
	cases := []struct {
		name      string
		htu       string
		req       func(*dpop.Request)
		opts      []dpop.VerifierOption
		wantError dpop.Reason
	}{
		{name: "upper-case scheme and host", htu: "HTTPS://API.Example.COM" + testPath},
		{name: "explicit default port", htu: "https://api.example.com:443" + testPath},
		{name: "empty port", htu: "https://api.example.com:" + testPath},
		{name: "percent-encoded unreserved", htu: "https://api.example.com/bank.v1.Accounts/%54ransfer"},
		{name: "lower-case percent hex", htu: "https://api.example.com/bank.v1.Accounts/Trans%2ffer",
			req: func(r *dpop.Request) { r.Path = "/bank.v1.Accounts/Trans%2Ffer" }},
		{name: "request authority with default port", htu: testHTU,
			req: func(r *dpop.Request) { r.Authority = "api.example.com:443" }},
		{name: "request authority upper case", htu: testHTU,
			req: func(r *dpop.Request) { r.Authority = "API.EXAMPLE.COM" }},
		{name: "configured authority", htu: "https://api.example.com:8443" + testPath,
			req:  func(r *dpop.Request) { r.Authority = "ignored.example.net" },
			opts: []dpop.VerifierOption{dpop.WithAuthorities("other.example.com", "API.example.com:8443")}},
		{name: "configured authority, default port", htu: testHTU,
			req:  func(r *dpop.Request) { r.Authority = "" },
			opts: []dpop.VerifierOption{dpop.WithAuthorities("api.example.com")}},
		{name: "configured authority, wrong port", htu: "https://api.example.com:8443" + testPath,
			opts: []dpop.VerifierOption{dpop.WithAuthorities("api.example.com")}, wantError: dpop.ReasonBadURI},
		{name: "configured authorities ignore the request authority", htu: testHTU,
			opts: []dpop.VerifierOption{dpop.WithAuthorities("other.example.com")}, wantError: dpop.ReasonBadURI},
		{name: "http allowed for plaintext", htu: "http://localhost:8080" + testPath,
			req: func(r *dpop.Request) { r.Authority = "localhost:8080"; r.AllowHTTP = true }},
		{name: "http default port", htu: "http://localhost" + testPath,
			req: func(r *dpop.Request) { r.Authority = "localhost:80"; r.AllowHTTP = true }},
		{name: "http port 443 is not default", htu: "http://localhost:443" + testPath,
			req: func(r *dpop.Request) { r.Authority = "localhost"; r.AllowHTTP = true }, wantError: dpop.ReasonBadURI},
		{name: "IPv6 literal", htu: "https://[::1]:8443" + testPath,
			req: func(r *dpop.Request) { r.Authority = "[::1]:8443" }},
		{name: "IPv6 zone refused", htu: "https://[fe80::1%25eth0]" + testPath,
			req: func(r *dpop.Request) { r.Authority = "[fe80::1%25eth0]" }, wantError: dpop.ReasonBadURI},
		{name: "other scheme", htu: "wss://api.example.com" + testPath, wantError: dpop.ReasonBadURI},
		{name: "no request authority", htu: testHTU,
			req: func(r *dpop.Request) { r.Authority = "" }, wantError: dpop.ReasonBadURI},
		{name: "trailing slash differs", htu: testHTU + "/", wantError: dpop.ReasonBadURI},
		{name: "path case differs", htu: "https://api.example.com/bank.v1.accounts/Transfer", wantError: dpop.ReasonBadURI},
		{name: "space in htu", htu: "https://api.example.com/bank.v1.Accounts/Trans fer", wantError: dpop.ReasonBadURI},
		{name: "port out of range", htu: "https://api.example.com:99999" + testPath, wantError: dpop.ReasonBadURI},
		{name: "backslash host trick", htu: `https://evil.com\@api.example.com` + testPath, wantError: dpop.ReasonBadURI},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, clock, tc.opts...)
			claims := `{"jti":"htu-case-jti-` + itoa(int64(100000+i)) + `","htm":"POST","htu":` + jsonString(tc.htu) +
				`,"iat":` + itoa(testNow.Unix()) + `,"ath":"` + dpop.ATH(testToken) + `"}`
			p := sign(t, "ES256", ecKey, proofHeader(t, "ES256", ecKey.Public()), claims)
			req := testRequest(p)
			if tc.req != nil {
				tc.req(&req)
			}
			_, err := v.Verify(context.Background(), req)
			if tc.wantError == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.wantError != "" {
				wantReason(t, err, tc.wantError)
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestIATWindowEdges(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock, dpop.WithIATWindow(30*time.Second, 2*time.Second))
	ctx := context.Background()
	cases := []struct {
		iat  string
		want dpop.Reason
	}{
		{itoa(testNow.Unix() - 30), ""},
		{itoa(testNow.Unix() - 31), dpop.ReasonIssuedTooOld},
		{itoa(testNow.Unix() + 2), ""},
		{itoa(testNow.Unix() + 3), dpop.ReasonIssuedInFuture},
		{itoa(testNow.Unix()) + ".5", ""},
		{itoa(testNow.Unix()) + "e0", ""},
		{"-1", dpop.ReasonIssuedTooOld},
		{"0", dpop.ReasonIssuedTooOld},
		{"1e400", dpop.ReasonIssuedInFuture},
		{"-1e400", dpop.ReasonIssuedTooOld},
	}
	for i, tc := range cases {
		claims := `{"jti":"iat-edge-case-` + itoa(int64(1000+i)) + `","htm":"POST","htu":"` + testHTU +
			`","iat":` + tc.iat + `,"ath":"` + dpop.ATH(testToken) + `"}`
		keys(t)
		p := sign(t, "ES256", ecKey, proofHeader(t, "ES256", ecKey.Public()), claims)
		_, err := v.Verify(ctx, testRequest(p))
		if got := dpop.ReasonOf(err); got != tc.want || (tc.want == "" && err != nil) {
			t.Errorf("iat %s: err %v, want reason %q", tc.iat, err, tc.want)
		}
	}
}

func TestVerifierConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		opt  dpop.VerifierOption
	}{
		{"alg none", dpop.WithAlgorithms("ES256", "none")},
		{"alg HS256", dpop.WithAlgorithms("HS256")},
		{"empty algs", dpop.WithAlgorithms()},
		{"RSA 1024", dpop.WithMinRSABits(1024)},
		{"RSA 16384", dpop.WithMinRSABits(16384)},
		{"zero past", dpop.WithIATWindow(0, time.Second)},
		{"negative future", dpop.WithIATWindow(time.Minute, -time.Second)},
		{"huge past", dpop.WithIATWindow(48*time.Hour, 0)},
		{"nil clock", dpop.WithClock(nil)},
		{"nil store", dpop.WithReplayStore(nil)},
		{"nil nonces", dpop.WithNonces(nil)},
		{"zero size", dpop.WithMaxProofSize(0)},
		{"huge size", dpop.WithMaxProofSize(1 << 20)},
		{"authority with scheme", dpop.WithAuthorities("https://api.example.com")},
		{"authority with path", dpop.WithAuthorities("api.example.com/x")},
		{"authority with userinfo", dpop.WithAuthorities("u@api.example.com")},
		{"negative key cache", dpop.WithKeyCacheSize(-1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := dpop.NewVerifier(tc.opt)
			if err == nil || v != nil {
				t.Fatalf("NewVerifier accepted %s", tc.name)
			}
			if !strings.HasPrefix(err.Error(), "dpop: ") {
				t.Fatalf("error %q lacks the dpop: prefix", err)
			}
		})
	}
}

// TestAlgorithmRestriction checks that WithAlgorithms narrows the list.
func TestAlgorithmRestriction(t *testing.T) {
	keys(t)
	clock := newClock(testNow)
	v := newTestVerifier(t, clock, dpop.WithAlgorithms("EdDSA", "Ed25519"))
	_, err := v.Verify(context.Background(), testRequest(goodProof(t, "restricted-algs-001", testNow.Unix())))
	wantReason(t, err, dpop.ReasonBadAlgorithm)
	p := sign(t, "EdDSA", edKey, proofHeader(t, "Ed25519", edKey.Public()), claimsJSON("restricted-algs-002", testNow.Unix()))
	if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
		t.Fatal(err)
	}
}

// TestKeyCacheConsistency checks that results are the same with and without
// the parsed-header cache, on the second sight of a header too.
func TestKeyCacheConsistency(t *testing.T) {
	keys(t)
	for _, size := range []int{0, 4} {
		clock := newClock(testNow)
		v := newTestVerifier(t, clock, dpop.WithKeyCacheSize(size), dpop.WithAlgorithms("ES256", "PS256"), dpop.WithMinRSABits(3072))
		for round := range 2 {
			p := goodProof(t, "cache-consistency-"+itoa(int64(10*size+round)), testNow.Unix())
			if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
				t.Fatalf("size %d round %d: %v", size, round, err)
			}
			p = sign(t, "PS256", rsaKey, proofHeader(t, "PS256", rsaKey.Public()), claimsJSON("cache-weak-rsa-"+itoa(int64(10*size+round)), testNow.Unix()))
			_, err := v.Verify(context.Background(), testRequest(p))
			wantReason(t, err, dpop.ReasonWeakKey)
			p = sign(t, "ES256", ecKey, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(t, ecKey.Public())+`,"kid":"k"}`, claimsJSON("cache-kid-"+itoa(int64(10*size+round))+"-xxxxxx", testNow.Unix()))
			if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
				t.Fatalf("header with kid: %v", err)
			}
		}
	}
}

// lineBreak inserts brk into segment seg of a compact JWS, 8 characters in.
func lineBreak(compact string, seg int, brk string) string {
	segs := strings.Split(compact, ".")
	segs[seg] = segs[seg][:8] + brk + segs[seg][8:]
	return strings.Join(segs, ".")
}
