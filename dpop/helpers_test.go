package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

var b64 = base64.RawURLEncoding

// newClock returns a settable clock at t: tests move it, never sleep.
func newClock(t time.Time) *testkit.Clock { return testkit.NewClock(t) }

// Keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce sync.Once
	ecKey    *ecdsa.PrivateKey
	ec384Key *ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
	rsaKey   *rsa.PrivateKey
	rsa1024  *rsa.PrivateKey
)

func keys(tb testing.TB) {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ec384Key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
}

// jwkOf returns the public JWK JSON of a key, built by hand (not by the
// package under test) so tests can also describe keys the package refuses.
func jwkOf(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		raw, err := p.Bytes()
		if err != nil {
			tb.Fatal(err)
		}
		return `{"kty":"EC","crv":"` + p.Curve.Params().Name + `","x":"` + b64.EncodeToString(raw[1:1+size]) +
			`","y":"` + b64.EncodeToString(raw[1+size:]) + `"}`
	case ed25519.PublicKey:
		return `{"kty":"OKP","crv":"Ed25519","x":"` + b64.EncodeToString(p) + `"}`
	case *rsa.PublicKey:
		return `{"kty":"RSA","n":"` + b64.EncodeToString(p.N.Bytes()) + `","e":"` +
			b64.EncodeToString(big.NewInt(int64(p.E)).Bytes()) + `"}`
	}
	tb.Fatalf("unsupported key %T", pub)
	return ""
}

// sign returns a compact JWS of the given raw header and claims JSON, signed
// with key under alg exactly as an attacker with that key would.
func sign(tb testing.TB, alg string, key any, header, claims string) string {
	tb.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	var sig []byte
	var err error
	h256 := sha256.Sum256([]byte(input))
	switch alg {
	case "ES256", "ES384":
		k := key.(*ecdsa.PrivateKey)
		digest := h256[:]
		if alg == "ES384" {
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		}
		var der []byte
		der, err = ecdsa.SignASN1(rand.Reader, k, digest)
		if err == nil {
			var rs struct{ R, S *big.Int }
			if _, err = asn1.Unmarshal(der, &rs); err == nil {
				size := (k.Curve.Params().BitSize + 7) / 8
				sig = make([]byte, 2*size)
				rs.R.FillBytes(sig[:size])
				rs.S.FillBytes(sig[size:])
			}
		}
	case "EdDSA", "Ed25519":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), []byte(input))
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h256[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h256[:])
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "none":
	default:
		tb.Fatalf("unknown alg %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// proofHeader is the usual header for a public key.
func proofHeader(tb testing.TB, alg string, pub crypto.PublicKey) string {
	return `{"typ":"dpop+jwt","alg":"` + alg + `","jwk":` + jwkOf(tb, pub) + `}`
}

// Test request constants: a gRPC call.
const (
	testAuthority = "api.example.com"
	testPath      = "/bank.v1.Accounts/Transfer"
	testHTU       = "https://" + testAuthority + testPath
	testToken     = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
)

var testNow = time.Unix(1_800_000_000, 0)

// claimsJSON returns typical valid claims for the test request.
func claimsJSON(jti string, iat int64) string {
	return `{"jti":"` + jti + `","htm":"POST","htu":"` + testHTU + `","iat":` + itoa(iat) +
		`,"ath":"` + dpop.ATH(testToken) + `"}`
}

func itoa(n int64) string { return big.NewInt(n).String() }

func testRequest(proof string) dpop.Request {
	return dpop.Request{
		Proof:       proof,
		Method:      "POST",
		Authority:   testAuthority,
		Path:        testPath,
		AccessToken: testToken,
	}
}

func newTestVerifier(tb testing.TB, clock *testkit.Clock, opts ...dpop.VerifierOption) *dpop.Verifier {
	tb.Helper()
	opts = append([]dpop.VerifierOption{dpop.WithClock(clock.Now)}, opts...)
	v, err := dpop.NewVerifier(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func wantReason(tb testing.TB, err error, want dpop.Reason) {
	tb.Helper()
	if got := dpop.ReasonOf(err); got != want {
		tb.Fatalf("reason = %q (err %v), want %q", got, err, want)
	}
}
