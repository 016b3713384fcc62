package interceptor_test

// The adversarial suite: every attack of docs/SECURITY-TESTS.md that the
// other test files do not already perform, each driven end to end over gRPC
// (bufconn) against a real Guard, asserting the gRPC code, the wire reason
// and the audit reason. TestSecurityMatrixMatchesTests keeps the matrix and
// these tests in step.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const atkApprove = "/policytest.v1.StepUpService/Approve"

var b64u = base64.RawURLEncoding

// Expected refusals, by the layer that refuses.

var atkAllowed = refusal{codes.OK, "", interceptor.ReasonAllowed}

func atkToken(r interceptor.Reason) refusal {
	return refusal{codes.Unauthenticated, interceptor.WireInvalidToken, r}
}

func atkProofReason(r dpop.Reason) refusal {
	return refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(r)}
}

func atkNonce(r dpop.Reason) refusal {
	return refusal{codes.Unauthenticated, interceptor.WireUseDPoPNonce, interceptor.Reason(r)}
}

func atkStepUp(r challenge.Reason) refusal {
	return refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(r)}
}

func atkRequest(r interceptor.Reason) refusal {
	return refusal{codes.Unauthenticated, interceptor.WireInvalidRequest, r}
}

// atkCase is one attack. prep sets the scene as the attacker would (obtain
// a challenge, a grant, a proof) and returns the attacking call; want is how
// that call must be refused (codes.OK: it must be allowed, for controls and
// for limits accepted at their boundary). opts, when set, configures the
// env.
type atkCase struct {
	name string
	opts func(t testing.TB) envOpts
	prep func(t *testing.T, e *env) func() error
	want refusal
}

// runAtkCases runs each case on a fresh env.
func runAtkCases(t *testing.T, cases []atkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var o envOpts
			if c.opts != nil {
				o = c.opts(t)
			}
			e := newEnv(t, o)
			runAtk(t, e, c.prep(t, e), c.want)
		})
	}
}

// runAtk performs the attacking call and checks its outcome: the wire
// status, the audit event, and that no handler ran for a refused call.
func runAtk(t *testing.T, e *env, call func() error, want refusal) {
	t.Helper()
	before := e.server.total()
	err := call()
	if want.code == codes.OK {
		if err != nil {
			t.Fatalf("call = %v, want it allowed (audit %+v)", err, e.audit.last(t))
		}
		ev := e.audit.last(t)
		if ev.Code != codes.OK || ev.Reason != interceptor.ReasonAllowed ||
			(ev.Decision != interceptor.DecisionAllow && ev.Decision != interceptor.DecisionStepUpPassed) {
			t.Fatalf("audit = %+v, want an allow", ev)
		}
		return
	}
	assertRefused(t, e, err, want)
	if n := e.server.total() - before; n != 0 {
		t.Fatalf("a handler ran %d times for a refused call", n)
	}
	switch ev := e.audit.last(t); ev.Decision {
	case interceptor.DecisionAllow, interceptor.DecisionStepUpPassed, interceptor.DecisionShadowDeny:
		t.Fatalf("refused call audited as %s", ev.Decision)
	}
}

// atkOutcomeIs reports, without failing, whether the call ended as want says.
func atkOutcomeIs(e *env, err error, want refusal) bool {
	evs := e.audit.all()
	if len(evs) == 0 {
		return false
	}
	ev := evs[len(evs)-1]
	if want.code == codes.OK {
		return err == nil && ev.Reason == interceptor.ReasonAllowed
	}
	return err != nil && ev.Code == want.code && ev.Reason == want.reason && interceptor.ReasonFromError(err) == want.wire
}

// ---- principals: a DPoP key and a token bound to it ----

type atkPrincipal struct {
	key    *ecdsa.PrivateKey
	signer *dpop.Signer
	token  string
}

// atkAlice is the env's client: its key and a fresh token for alice.
func atkAlice(e *env) *atkPrincipal {
	return &atkPrincipal{key: e.key.(*ecdsa.PrivateKey), signer: e.signer, token: e.boundToken(tokenOpts{})}
}

// atkAs is the env's key with a token for another subject (or with other
// token options).
func atkAs(e *env, o tokenOpts) *atkPrincipal {
	return &atkPrincipal{key: e.key.(*ecdsa.PrivateKey), signer: e.signer, token: e.boundToken(o)}
}

// atkWithToken is the env's key presenting token.
func atkWithToken(e *env, token string) *atkPrincipal {
	return &atkPrincipal{key: e.key.(*ecdsa.PrivateKey), signer: e.signer, token: token}
}

// atkOther is someone else: a fresh DPoP key and a token for subject bound
// to it, from the same issuer.
func atkOther(t testing.TB, e *env, subject string) *atkPrincipal {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	tok := e.issuer.mint(t, e.clock.Now(), tokenOpts{Subject: subject, JKT: s.Thumbprint(), Scope: "guarded guarded:write"})
	return &atkPrincipal{key: k, signer: s, token: tok}
}

// creds are the credential pairs of a call to method with a fresh proof.
func (p *atkPrincipal) creds(t testing.TB, method string, extra ...string) []string {
	t.Helper()
	proof, err := p.signer.Proof("POST", "https://api.example"+method, p.token)
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"authorization", "DPoP " + p.token, "dpop", proof}, extra...)
}

func (p *atkPrincipal) ctx(t testing.TB, method string, extra ...string) context.Context {
	t.Helper()
	return withCreds(context.Background(), p.creds(t, method, extra...)...)
}

// ---- calls ----

// atkCall makes one raw call of method (the credentials are in ctx) and
// returns the response header.
func atkCall(ctx context.Context, e *env, method string) (metadata.MD, error) {
	var hdr metadata.MD
	req := &policytestv1.PlainRequest{Text: "hi"}
	c := e.raw()
	var err error
	switch method {
	case mPlain:
		_, err = c.Plain(ctx, req, grpc.Header(&hdr))
	case mSensitive:
		_, err = c.Sensitive(ctx, transferRequest(12_000), grpc.Header(&hdr))
	case mGranted:
		_, err = c.Granted(ctx, req, grpc.Header(&hdr))
	case mReusable:
		_, err = c.Reusable(ctx, req, grpc.Header(&hdr))
	case atkApprove:
		_, err = policytestv1.NewStepUpServiceClient(e.conn()).Approve(ctx, req, grpc.Header(&hdr))
	case mWatch:
		var s grpc.ServerStreamingClient[policytestv1.PlainResponse]
		if s, err = c.Watch(ctx, req); err != nil {
			return nil, err
		}
		if _, err = s.Recv(); err != nil {
			return nil, err
		}
		hdr, err = s.Header()
		for err == nil {
			_, err = s.Recv()
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	case mUpload:
		_, err = kinds[1].call(ctx, c)
	case mChat:
		_, err = kinds[2].call(ctx, c)
	default:
		return nil, fmt.Errorf("atkCall: unknown method %s", method)
	}
	return hdr, err
}

func atkDo(ctx context.Context, e *env, method string) error {
	_, err := atkCall(ctx, e, method)
	return err
}

// atkChallenge calls method as p without step-up and returns the challenge
// it is refused with.
func atkChallenge(t testing.TB, e *env, p *atkPrincipal, method string) *stepupv1.StepUpChallenge {
	t.Helper()
	err := atkDo(p.ctx(t, method), e, method)
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		t.Fatalf("call = %v, want a step-up challenge", err)
	}
	return ch
}

func atkCode(t testing.TB, at time.Time) string {
	t.Helper()
	code, err := challenge.TOTPCode(testTOTP, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// atkAnswer signs an answer to ch with p's DPoP key.
func atkAnswer(t testing.TB, p *atkPrincipal, ch *stepupv1.StepUpChallenge, ev *challenge.Evidence) string {
	t.Helper()
	a, err := challenge.Answer(p.signer, ch, ev)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func atkTOTPAnswer(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge, code string) string {
	t.Helper()
	if code == "" {
		code = atkCode(t, e.clock.Now())
	}
	return atkAnswer(t, p, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
}

// atkGrant steps up as p on method with TOTP and returns the grant.
func atkGrant(t testing.TB, e *env, p *atkPrincipal, method string) string {
	t.Helper()
	ch := atkChallenge(t, e, p, method)
	hdr, err := atkCall(p.ctx(t, method, "stepup-answer", atkTOTPAnswer(t, e, p, ch, "")), e, method)
	if err != nil {
		t.Fatalf("step-up: %v", err)
	}
	g := hdr.Get("stepup-grant")
	if len(g) != 1 {
		t.Fatalf("no grant in the response header %v", hdr)
	}
	return g[0]
}

// ---- JOSE crafting ----

func atkJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// atkCompact is header.payload.signature; sign nil leaves the signature empty.
func atkCompact(header, payload []byte, sign func([]byte) []byte) string {
	in := b64u.EncodeToString(header) + "." + b64u.EncodeToString(payload)
	if sign == nil {
		return in + "."
	}
	return in + "." + b64u.EncodeToString(sign([]byte(in)))
}

// atkES256 signs a JWS signing input with k (RFC 7518 §3.4: R || S).
func atkES256(k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

func atkHS256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

func atkRS256(k *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// atkThumbprint is the RFC 7638 thumbprint of a public JWK given by its
// required members (json.Marshal sorts them and adds no whitespace).
func atkThumbprint(t testing.TB, members map[string]string) string {
	h := sha256.Sum256(atkJSON(t, members))
	return b64u.EncodeToString(h[:])
}

func atkPublicJWK(e *env) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(e.signer.PublicJWK(), &m)
	return m
}

// atkTokenHeader and atkTokenClaims describe a valid access token for
// alice bound to the env's key; atkSignToken signs them with key (the
// issuer's key, or an attacker's).
func atkTokenHeader() map[string]any {
	return map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": "issuer-key-1"}
}

func atkTokenClaims(e *env) map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": testIssuer, "sub": "alice", "aud": testAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": "tok-crafted", "client_id": "client-1", "scope": "guarded guarded:write",
		"cnf": map[string]any{"jkt": e.signer.Thumbprint()},
	}
}

func atkSignToken(t testing.TB, hdr, claims map[string]any, key *ecdsa.PrivateKey) string {
	return atkCompact(atkJSON(t, hdr), atkJSON(t, claims), atkES256(key))
}

func atkAttackerKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// atkTokenCase presents a crafted token (and a valid proof for it) on Plain.
func atkTokenCase(name string, craft func(t testing.TB, e *env, hdr, claims map[string]any) string, want refusal) atkCase {
	return atkCase{name: name, want: want, prep: func(t *testing.T, e *env) func() error {
		tok := craft(t, e, atkTokenHeader(), atkTokenClaims(e))
		return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
	}}
}

// atkSelfSigned is a self-signed certificate (DER) for k, as an attacker
// would put in x5c.
func atkSelfSigned(t testing.TB, k *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: testIssuer},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_900_000_000, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func atkJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b64u.EncodeToString(b[:])
}

// atkProofHeader and atkProofClaims describe a valid proof for a call of
// method with token, by the env's key.
func atkProofHeader(e *env) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": json.RawMessage(e.signer.PublicJWK())}
}

func atkProofClaims(e *env, method, token string) map[string]any {
	return map[string]any{
		"jti": atkJTI(), "htm": "POST", "htu": "https://api.example" + method,
		"iat": e.clock.Now().Unix(), "ath": dpop.ATH(token),
	}
}

// atkProofCase presents alice's valid token on Plain with a proof that
// craft builds from a valid header and claims.
func atkProofCase(name string, craft func(t testing.TB, e *env, token string, hdr, claims map[string]any) (proof, boundTo string), want refusal) atkCase {
	return atkCase{name: name, want: want, prep: func(t *testing.T, e *env) func() error {
		tok := e.boundToken(tokenOpts{})
		proof, jkt := craft(t, e, tok, atkProofHeader(e), atkProofClaims(e, mPlain, tok))
		if jkt != "" {
			// The proof's key is not the env's: the token is bound to it,
			// as an issuer would have done for that client.
			tok = e.issuer.mint(t, e.clock.Now(), tokenOpts{JKT: jkt, Scope: "guarded guarded:write"})
			proof, _ = craft(t, e, tok, atkProofHeader(e), atkProofClaims(e, mPlain, tok))
		}
		return func() error {
			return atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", proof), e, mPlain)
		}
	}}
}

var atkEd25519Key = sync.OnceValue(func() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// atkSigned signs a crafted proof with the env's key.
func atkSigned(t testing.TB, e *env, hdr, claims map[string]any) string {
	return atkCompact(atkJSON(t, hdr), atkJSON(t, claims), atkES256(e.key.(*ecdsa.PrivateKey)))
}

// atkFakeRSA returns a JWK of an RSA "key" whose modulus has exactly bits
// bits (odd, top bit set): enough for every check before the signature.
func atkFakeRSA(bits int) map[string]string {
	n := make([]byte, (bits+7)/8)
	_, _ = rand.Read(n)
	n[0] &= byte(0xff >> (8*len(n) - bits))
	n[0] |= byte(0x80 >> (8*len(n) - bits))
	n[len(n)-1] |= 1
	return map[string]string{"kty": "RSA", "n": b64u.EncodeToString(n), "e": "AQAB"}
}

// atkFakeRSAProof is a proof under a fake RSA key of bits bits with a
// random signature, and the thumbprint the token must be bound to.
func atkFakeRSAProof(bits int) func(t testing.TB, e *env, token string, hdr, claims map[string]any) (string, string) {
	jwk := atkFakeRSA(bits)
	sig := make([]byte, (bits+7)/8)
	_, _ = rand.Read(sig)
	return func(t testing.TB, e *env, token string, hdr, claims map[string]any) (string, string) {
		hdr["alg"], hdr["jwk"] = "RS256", jwk
		return atkCompact(atkJSON(t, hdr), atkJSON(t, claims), func([]byte) []byte { return sig }), atkThumbprint(t, jwk)
	}
}

// atkSized builds a compact JWS of exactly size bytes from a header and a
// payload (raw JSON objects): spaces after the header's "{" and a "pad"
// member at the end of the payload take up the room. sigLen is the length
// of the encoded signature.
func atkSized(t testing.TB, size int, header, payload string, sigLen int, sign func([]byte) []byte) string {
	t.Helper()
	base := strings.TrimSuffix(payload, "}") + `,"pad":"`
	for sp := 0; sp < 4; sp++ {
		h := "{" + strings.Repeat(" ", sp) + header[1:]
		hl := b64u.EncodedLen(len(h))
		for n := 0; ; n++ {
			total := hl + 1 + b64u.EncodedLen(len(base)+n+2) + 1 + sigLen
			if total > size {
				break
			}
			if total == size {
				out := atkCompact([]byte(h), []byte(base+strings.Repeat("p", n)+`"}`), sign)
				if len(out) != size {
					t.Fatalf("built %d bytes, want %d", len(out), size)
				}
				return out
			}
		}
	}
	t.Fatalf("no padding reaches %d bytes", size)
	return ""
}

// atkRSAIssuerKey is an issuer's RSA key, for the algorithm cases.
var atkRSAIssuerKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// atkRSAIssuer configures the env's Guard with a JWTVerifier of
// atkRSAIssuerKey, published in the JWKS with "alg": alg ("" for none),
// allowing the algorithms algs (nil: the default list).
func atkRSAIssuer(alg string, algs ...string) func(t testing.TB) envOpts {
	return func(t testing.TB) envOpts {
		k := atkRSAIssuerKey()
		key := map[string]string{"kty": "RSA", "kid": "rsa-1", "use": "sig",
			"n": b64u.EncodeToString(k.N.Bytes()), "e": "AQAB"}
		if alg != "" {
			key["alg"] = alg
		}
		v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
			Issuer: testIssuer, Audience: testAudience, Algorithms: algs,
			JWKS:  atkJSON(t, map[string]any{"keys": []any{key}}),
			Clock: newClock().Now, // the env's clock, which these cases do not move
		})
		if err != nil {
			t.Fatal(err)
		}
		return envOpts{guardOpts: []interceptor.Option{interceptor.WithTokenVerifier(v)}}
	}
}

// atkRSASigned signs an access token with atkRSAIssuerKey under the header
// alg label, the signature made with the algorithm sigAlg (PKCS #1 v1.5
// "RS…" or PSS "PS…", with its hash).
func atkRSASigned(t testing.TB, e *env, label, sigAlg string) string {
	return atkRSASignedKid(t, e, "rsa-1", label, sigAlg)
}

// atkRSASignedKid is atkRSASigned with the header's kid.
func atkRSASignedKid(t testing.TB, e *env, kid, label, sigAlg string) string {
	h, c := atkTokenHeader(), atkTokenClaims(e)
	h["alg"], h["kid"] = label, kid
	k := atkRSAIssuerKey()
	return atkCompact(atkJSON(t, h), atkJSON(t, c), func(in []byte) []byte {
		hash := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[sigAlg[2:]]
		hh := hash.New()
		hh.Write(in)
		var sig []byte
		var err error
		if strings.HasPrefix(sigAlg, "PS") {
			sig, err = rsa.SignPSS(rand.Reader, k, hash, hh.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, hash, hh.Sum(nil))
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	})
}

// atkTokenAlgCase presents a token labelled label, signed sigAlg, to a Guard
// whose issuer key is published with keyAlg and which allows algs.
func atkTokenAlgCase(name, label, sigAlg, keyAlg string, algs []string, want refusal) atkCase {
	return atkCase{name: name, opts: atkRSAIssuer(keyAlg, algs...), want: want, prep: func(t *testing.T, e *env) func() error {
		tok := atkRSASigned(t, e, label, sigAlg)
		return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
	}}
}

// atkBearerCase presents, with the Bearer scheme on a method that accepts
// bearer tokens, a token whose claims edit changed.
func atkBearerCase(name string, edit func(e *env, c map[string]any), want refusal) atkCase {
	return atkCase{name: name, opts: atkDowngradeOpts, want: want, prep: func(t *testing.T, e *env) func() error {
		c := atkTokenClaims(e)
		edit(e, c)
		tok := atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey())
		return func() error {
			return atkDo(withCreds(context.Background(), "authorization", "Bearer "+tok), e, mPlain)
		}
	}}
}

// ---- tokens (RFC 9068, RFC 8725, RFC 9449 §7.1) ----

var tokenAttacks = []atkCase{
	atkTokenCase("control: crafted token", func(t testing.TB, e *env, h, c map[string]any) string {
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkAllowed),
	atkTokenCase("kid of an unknown key", func(t testing.TB, e *env, h, c map[string]any) string {
		h["kid"] = "../../../../etc/attacker-key"
		return atkSignToken(t, h, c, atkAttackerKey(t))
	}, atkToken(interceptor.ReasonTokenBadSignature)),
	atkTokenCase("jku header", func(t testing.TB, e *env, h, c map[string]any) string {
		h["jku"] = "https://evil.example/jwks.json"
		return atkSignToken(t, h, c, atkAttackerKey(t))
	}, atkToken(interceptor.ReasonTokenBadHeader)),
	atkTokenCase("x5u header", func(t testing.TB, e *env, h, c map[string]any) string {
		h["x5u"] = "https://evil.example/cert.pem"
		return atkSignToken(t, h, c, atkAttackerKey(t))
	}, atkToken(interceptor.ReasonTokenBadHeader)),
	atkTokenCase("embedded jwk header", func(t testing.TB, e *env, h, c map[string]any) string {
		k := atkAttackerKey(t)
		h["jwk"] = map[string]string{"kty": "EC", "crv": "P-256",
			"x": b64u.EncodeToString(k.X.FillBytes(make([]byte, 32))), "y": b64u.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
		delete(h, "kid")
		return atkSignToken(t, h, c, k)
	}, atkToken(interceptor.ReasonTokenBadHeader)),
	atkTokenCase("x5c header", func(t testing.TB, e *env, h, c map[string]any) string {
		k := atkAttackerKey(t)
		h["x5c"] = []string{base64.StdEncoding.EncodeToString(atkSelfSigned(t, k))}
		return atkSignToken(t, h, c, k)
	}, atkToken(interceptor.ReasonTokenBadHeader)),
	atkTokenCase("crit header", func(t testing.TB, e *env, h, c map[string]any) string {
		h["crit"], h["exp"] = []string{"exp"}, 1
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenBadHeader)),
	atkTokenCase("RS256 header on the issuer's EC key", func(t testing.TB, e *env, h, c map[string]any) string {
		h["alg"] = "RS256"
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenBadSignature)),
	atkTokenCase("typ missing", func(t testing.TB, e *env, h, c map[string]any) string {
		delete(h, "typ")
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenBadType)),
	atkTokenCase("DPoP proof type", func(t testing.TB, e *env, h, c map[string]any) string {
		h["typ"] = "dpop+jwt"
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenBadType)),
	atkTokenCase("nbf in the future", func(t testing.TB, e *env, h, c map[string]any) string {
		c["nbf"] = e.clock.Now().Add(10 * time.Minute).Unix()
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenNotYetValid)),
	atkTokenCase("no exp claim", func(t testing.TB, e *env, h, c map[string]any) string {
		delete(c, "exp")
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkTokenCase("no sub claim", func(t testing.TB, e *env, h, c map[string]any) string {
		delete(c, "sub")
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	{
		// RFC 9068 §2.2: sub is required; an empty one names nobody, and
		// handlers would see an anonymous caller.
		name: "empty sub claim",
		want: atkToken(interceptor.ReasonTokenInvalidClaims),
		prep: func(t *testing.T, e *env) func() error {
			h, c := atkTokenHeader(), atkTokenClaims(e)
			c["sub"] = ""
			tok := atkSignToken(t, h, c, e.issuer.PrivateKey())
			return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
		},
	},
	atkTokenCase("cnf.jkt not a string", func(t testing.TB, e *env, h, c map[string]any) string {
		c["cnf"] = map[string]any{"jkt": 42}
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkTokenCase("scope not a string", func(t testing.TB, e *env, h, c map[string]any) string {
		c["scope"] = []string{"guarded", "admin"}
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	{
		// RFC 7515 §2 / RFC 4648 §3.5: one token, one spelling. A token with
		// "=" padding or non-zero trailing bits is not the token the issuer
		// signed, and a denylist or log keyed on the token bytes would miss it.
		name: "non-canonical token encoding",
		want: atkToken(interceptor.ReasonTokenMalformed),
		prep: func(t *testing.T, e *env) func() error {
			tok := e.boundToken(tokenOpts{}) + "=="
			return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
		},
	},
	{
		// The verified-token cache holds alice's token after her call; the
		// same token with claims widened under its signature is another
		// token, verified in full.
		name: "token edited after its genuine form was cached",
		want: atkToken(interceptor.ReasonTokenBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			if err := atkDo(alice.ctx(t, mPlain), e, mPlain); err != nil {
				t.Fatal(err)
			}
			tok := atkTamper(t, alice.token, func(h, p []byte) ([]byte, []byte) {
				var c map[string]any
				_ = json.Unmarshal(p, &c)
				c["scope"] = "guarded admin"
				return h, atkJSON(t, c)
			})
			return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
		},
	},
	// jwx verified with the key's own "alg" and never compared it with
	// the header's: the allowlist judged a label, not the signature.
	atkTokenAlgCase("PS256 label over an RS256 signature, keys published as RS256", "PS256", "RS256", "RS256", []string{"PS256"},
		atkToken(interceptor.ReasonTokenBadSignature)),
	atkTokenAlgCase("RS256 label over an RS512 signature, key published as RS512", "RS256", "RS512", "RS512", nil,
		atkToken(interceptor.ReasonTokenBadSignature)),
	atkTokenAlgCase("control: RS256 token, key published as RS256", "RS256", "RS256", "RS256", nil, atkAllowed),
	atkTokenAlgCase("control: PS256 token, key published without alg", "PS256", "PS256", "", []string{"PS256"}, atkAllowed),
	// RFC 6749 §3.3: a scope token is %x21 / %x23-5B / %x5D-7E. A backend
	// behind the gateway splits the assertion's scope on white space.
	atkTokenCase("scp array element with a line feed", func(t testing.TB, e *env, h, c map[string]any) string {
		delete(c, "scope")
		c["scp"] = []string{"guarded", "guarded:write", "x\nadmin"}
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkTokenCase("scope string with a line feed", func(t testing.TB, e *env, h, c map[string]any) string {
		c["scope"] = "guarded x\nadmin"
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkTokenCase("scp string with a no-break space", func(t testing.TB, e *env, h, c map[string]any) string {
		delete(c, "scope")
		c["scp"] = "guarded x\u00a0admin"
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	// RFC 7800 §3.1: a confirmation method the Guard cannot check must not
	// leave the token as a bearer token.
	atkBearerCase("cnf with x5t#S256 and no jkt, as bearer", func(e *env, c map[string]any) {
		c["cnf"] = map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkBearerCase("cnf with a jwk and no jkt, as bearer", func(e *env, c map[string]any) {
		c["cnf"] = map[string]any{"jwk": atkPublicJWK(e)}
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkTokenCase("cnf with jkt and x5t#S256", func(t testing.TB, e *env, h, c map[string]any) string {
		c["cnf"] = map[string]any{"jkt": e.signer.Thumbprint(), "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
		return atkSignToken(t, h, c, e.issuer.PrivateKey())
	}, atkToken(interceptor.ReasonTokenInvalidClaims)),
	atkBearerCase("control: no cnf, as bearer", func(e *env, c map[string]any) { delete(c, "cnf") }, atkAllowed),
	{
		// challenge.Check refuses subjects over 1024 bytes: the Guard must
		// refuse such a token as invalid, not as an error of its own.
		name: "subject over 1024 bytes on a step-up method",
		want: atkToken(interceptor.ReasonTokenInvalidClaims),
		prep: func(t *testing.T, e *env) func() error {
			p := atkAs(e, tokenOpts{Subject: strings.Repeat("s", 1025)})
			return func() error { return atkDo(p.ctx(t, mGranted), e, mGranted) }
		},
	},
}

func TestTokenAttacks(t *testing.T) { runAtkCases(t, tokenAttacks) }

// ---- proofs (RFC 9449 §4.3) ----

var proofAttacks = []atkCase{
	atkProofCase("control: crafted proof", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		return atkSigned(t, e, h, c), ""
	}, atkAllowed),
	atkProofCase("typ JWT", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		h["typ"] = "JWT"
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadType)),
	atkProofCase("typ missing", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		delete(h, "typ")
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadType)),
	atkProofCase("alg none", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		h["alg"] = "none"
		return atkCompact(atkJSON(t, h), atkJSON(t, c), nil), ""
	}, atkProofReason(dpop.ReasonBadAlgorithm)),
	atkProofCase("alg HS256 with an oct key", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		secret := []byte("0123456789abcdef0123456789abcdef")
		h["alg"], h["jwk"] = "HS256", map[string]string{"kty": "oct", "k": b64u.EncodeToString(secret)}
		return atkCompact(atkJSON(t, h), atkJSON(t, c), atkHS256(secret)), ""
	}, atkProofReason(dpop.ReasonBadAlgorithm)),
	atkProofCase("private key in the jwk", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		jwk := atkPublicJWK(e)
		jwk["d"] = b64u.EncodeToString(e.key.(*ecdsa.PrivateKey).D.FillBytes(make([]byte, 32)))
		h["jwk"] = jwk
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonPrivateKey)),
	atkProofCase("RSA 1024-bit key", func() func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		var once sync.Once
		var k *rsa.PrivateKey
		return func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
			once.Do(func() {
				var err error
				if k, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
					t.Fatal(err)
				}
			})
			jwk := map[string]string{"kty": "RSA", "n": b64u.EncodeToString(k.N.Bytes()), "e": "AQAB"}
			h["alg"], h["jwk"] = "RS256", jwk
			return atkCompact(atkJSON(t, h), atkJSON(t, c), atkRS256(k)), atkThumbprint(t, jwk)
		}
	}(), atkProofReason(dpop.ReasonWeakKey)),
	atkProofCase("signature by another key", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		return atkCompact(atkJSON(t, h), atkJSON(t, c), atkES256(atkAttackerKey(t))), ""
	}, atkProofReason(dpop.ReasonBadSignature)),
	atkProofCase("htm in lower case", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htm"] = "post"
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadMethod)),
	atkProofCase("htu scheme ftp", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "ftp://api.example" + mPlain
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("htu with another port", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "https://api.example:8443" + mPlain
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("htu with userinfo", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "https://evil.example@api.example" + mPlain
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("htu with a query", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "https://api.example" + mPlain + "?to=mallory"
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("htu with a fragment", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "https://api.example" + mPlain + "#x"
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("htu path in another case", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["htu"] = "https://api.example" + strings.ToLower(mPlain)
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadURI)),
	atkProofCase("iat 61 s in the past", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["iat"] = e.clock.Now().Add(-61 * time.Second).Unix()
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonIssuedTooOld)),
	atkProofCase("iat 6 s in the future", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["iat"] = e.clock.Now().Add(6 * time.Second).Unix()
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonIssuedInFuture)),
	atkProofCase("ath missing", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		delete(c, "ath")
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadATH)),
	atkProofCase("jti too short", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["jti"] = "1"
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("crit header", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		h["crit"] = []string{"exp"}
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadKey)),
	atkProofCase("no jwk", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		delete(h, "jwk")
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadKey)),
	atkProofCase("ES256 header with an Ed25519 key", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		priv := atkEd25519Key()
		pub := priv.Public().(ed25519.PublicKey)
		jwk := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64u.EncodeToString(pub)}
		h["jwk"] = jwk
		return atkCompact(atkJSON(t, h), atkJSON(t, c), func(in []byte) []byte { return ed25519.Sign(priv, in) }), atkThumbprint(t, jwk)
	}, atkProofReason(dpop.ReasonBadAlgorithm)),
	atkProofCase("EC point not on the curve", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		jwk := atkPublicJWK(e)
		y, _ := b64u.DecodeString(jwk["y"].(string))
		y[31] ^= 1
		jwk["y"] = b64u.EncodeToString(y)
		h["jwk"] = jwk
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonBadKey)),
	atkProofCase("RSA modulus over 8192 bits", atkFakeRSAProof(8200), atkProofReason(dpop.ReasonWeakKey)),
	// A JSON escape \n inside a base64url value decodes to a line feed,
	// which encoding/base64 skips: the same key spelled another way.
	atkProofCase("Ed25519 jwk x with an escaped line feed", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		priv := atkEd25519Key()
		x := b64u.EncodeToString(priv.Public().(ed25519.PublicKey))
		h["alg"] = "EdDSA"
		h["jwk"] = json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"` + x[:20] + `\n` + x[20:] + `"}`)
		return atkCompact(atkJSON(t, h), atkJSON(t, c), func(in []byte) []byte { return ed25519.Sign(priv, in) }),
			atkThumbprint(t, map[string]string{"kty": "OKP", "crv": "Ed25519", "x": x})
	}, atkProofReason(dpop.ReasonBadKey)),
	atkProofCase("RSA jwk n with an escaped line feed", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		k := atkRSAIssuerKey()
		n := b64u.EncodeToString(k.N.Bytes())
		h["alg"] = "RS256"
		h["jwk"] = json.RawMessage(`{"kty":"RSA","n":"` + n[:100] + `\r\n` + n[100:] + `","e":"AQAB"}`)
		return atkCompact(atkJSON(t, h), atkJSON(t, c), atkRS256(k)), atkThumbprint(t, map[string]string{"kty": "RSA", "n": n, "e": "AQAB"})
	}, atkProofReason(dpop.ReasonBadKey)),
	atkProofCase("malformed base64", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		p := atkSigned(t, e, h, c)
		i := strings.IndexByte(p, '.') + 5
		return p[:i] + "*" + p[i+1:], ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("padded base64", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		return atkSigned(t, e, h, c) + "==", ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("four segments", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		return atkSigned(t, e, h, c) + ".e30", ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("malformed JSON", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		body := atkJSON(t, c)
		return atkCompact(atkJSON(t, h), body[:len(body)-1], atkES256(e.key.(*ecdsa.PrivateKey))), ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("duplicate JSON member", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		// Two htu: a parser that keeps the first sees evil.example, one
		// that keeps the last sees this server (RFC 8725 §3.4).
		body := string(atkJSON(t, c))
		body = `{"htu":"https://evil.example/x",` + body[1:]
		return atkCompact(atkJSON(t, h), []byte(body), atkES256(e.key.(*ecdsa.PrivateKey))), ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("deeply nested JSON", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		body := string(atkJSON(t, c))
		body = body[:len(body)-1] + `,"deep":` + strings.Repeat("[", 2500) + strings.Repeat("]", 2500) + "}"
		return atkCompact(atkJSON(t, h), []byte(body), atkES256(e.key.(*ecdsa.PrivateKey))), ""
	}, atkProofReason(dpop.ReasonMalformed)),
	atkProofCase("iat as a string", func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["iat"] = fmt.Sprint(e.clock.Now().Unix())
		return atkSigned(t, e, h, c), ""
	}, atkProofReason(dpop.ReasonMalformed)),
	{
		// RFC 9449 §11.1 and the design: a refused proof never consumes its
		// jti, so an attacker who learns a jti cannot burn it with a forgery.
		name: "forged proof with a victim's jti",
		want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			tok := e.boundToken(tokenOpts{})
			c := atkProofClaims(e, mPlain, tok)
			forged := atkCompact(atkJSON(t, atkProofHeader(e)), atkJSON(t, c), atkES256(atkAttackerKey(t)))
			err := atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", forged), e, mPlain)
			assertRefused(t, e, err, atkProofReason(dpop.ReasonBadSignature))
			genuine := atkSigned(t, e, atkProofHeader(e), c)
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", genuine), e, mPlain)
			}
		},
	},
}

func TestProofAttacks(t *testing.T) { runAtkCases(t, proofAttacks) }

// ---- server nonces (RFC 9449 §8) ----

func atkNonceOpts(testing.TB) envOpts { return envOpts{nonces: true} }

func atkNonceCase(name string, nonce func(t testing.TB, e *env) string, want refusal) atkCase {
	return atkCase{name: name, opts: atkNonceOpts, want: want, prep: func(t *testing.T, e *env) func() error {
		tok := e.boundToken(tokenOpts{})
		n := nonce(t, e)
		return func() error {
			p, err := e.signer.ProofWithNonce("POST", "https://api.example"+mPlain, tok, n)
			if err != nil {
				t.Fatal(err)
			}
			return atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", p), e, mPlain)
		}
	}}
}

var nonceAttacks = []atkCase{
	atkNonceCase("control: current nonce", func(t testing.TB, e *env) string { return e.nonces.Current() }, atkAllowed),
	atkNonceCase("stale nonce", func(t testing.TB, e *env) string {
		n := e.nonces.Current()
		e.clock.Advance(2*time.Minute + time.Second) // two one-minute windows later
		return n
	}, atkNonce(dpop.ReasonNonceInvalid)),
	atkNonceCase("forged nonce", func(t testing.TB, e *env) string {
		return b64u.EncodeToString(bytes.Repeat([]byte{7}, 32))
	}, atkNonce(dpop.ReasonNonceInvalid)),
	atkNonceCase("nonce of another server", func(t testing.TB, e *env) string {
		other, err := dpop.NewNonces(bytes.Repeat([]byte("o"), 32), time.Minute, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		return other.Current()
	}, atkNonce(dpop.ReasonNonceInvalid)),
}

func TestNonceAttacks(t *testing.T) { runAtkCases(t, nonceAttacks) }

// ---- challenges (RFC 9470 semantics, docs/STEPUP.md) ----

// atkTamper replaces the header or payload of an HS256 token, keeping its MAC.
func atkTamper(t testing.TB, token string, edit func(header, payload []byte) ([]byte, []byte)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	h, err := b64u.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := b64u.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	h, p = edit(h, p)
	return b64u.EncodeToString(h) + "." + b64u.EncodeToString(p) + "." + parts[2]
}

func atkWithChallenge(ch *stepupv1.StepUpChallenge, token string) *stepupv1.StepUpChallenge {
	c := proto.CloneOf(ch)
	c.Challenge = token
	return c
}

var challengeAttacks = []atkCase{
	{name: "challenge for another method", want: atkStepUp(challenge.ReasonChallengeWrongMethod),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ans := atkTOTPAnswer(t, e, alice, atkChallenge(t, e, alice, mGranted), "")
			return func() error { return atkDo(alice.ctx(t, mWatch, "stepup-answer", ans), e, mWatch) }
		}},
	{name: "challenge for another key", want: atkStepUp(challenge.ReasonChallengeWrongKey),
		prep: func(t *testing.T, e *env) func() error {
			// Mallory has alice's challenge (a log, a proxy) and a token for
			// alice bound to her own key; she answers with her key.
			ch := atkChallenge(t, e, atkAlice(e), mGranted)
			mallory := atkOther(t, e, "alice")
			ans := atkTOTPAnswer(t, e, mallory, ch, "")
			return func() error { return atkDo(mallory.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "challenge for another subject", want: atkStepUp(challenge.ReasonChallengeWrongSubject),
		prep: func(t *testing.T, e *env) func() error {
			bob := atkAs(e, tokenOpts{Subject: "bob"})
			alice := atkAlice(e)
			ans := atkTOTPAnswer(t, e, alice, atkChallenge(t, e, bob, mGranted), "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "expired challenge", want: atkStepUp(challenge.ReasonChallengeExpired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			e.clock.Advance(challenge.DefaultChallengeTTL)
			ans := atkTOTPAnswer(t, e, alice, ch, "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "reused challenge", want: atkStepUp(challenge.ReasonChallengeReused),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			if err := atkDo(alice.ctx(t, mGranted, "stepup-answer", atkTOTPAnswer(t, e, alice, ch, "")), e, mGranted); err != nil {
				t.Fatal(err)
			}
			// A fresh code (the next time step) on the consumed challenge.
			e.clock.Advance(30 * time.Second)
			ans := atkTOTPAnswer(t, e, alice, ch, "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "tampered challenge", want: atkStepUp(challenge.ReasonChallengeBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			forged := atkTamper(t, ch.GetChallenge(), func(h, p []byte) ([]byte, []byte) {
				var c map[string]any
				_ = json.Unmarshal(p, &c)
				c["exp"] = c["exp"].(float64) + 86400
				return h, atkJSON(t, c)
			})
			ans := atkTOTPAnswer(t, e, alice, atkWithChallenge(ch, forged), "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "challenge with an unknown kid", want: atkStepUp(challenge.ReasonChallengeBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			forged := atkTamper(t, ch.GetChallenge(), func(h, p []byte) ([]byte, []byte) {
				return []byte(`{"alg":"HS256","kid":"k9","typ":"` + challenge.ChallengeType + `"}`), p
			})
			ans := atkTOTPAnswer(t, e, alice, atkWithChallenge(ch, forged), "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "challenge signed by another deployment", want: atkStepUp(challenge.ReasonChallengeBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			// Same kid, another secret: a staging server's challenge.
			k, _ := challenge.GenerateKey("k1")
			ks, _ := challenge.NewKeySet(k)
			other, err := challenge.NewService(challenge.WithKeys(ks), challenge.WithClock(e.clock.Now),
				challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return testTOTP, nil }), challenge.TOTPOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			out, err := other.Check(context.Background(), challenge.Call{Subject: "alice", Thumbprint: e.signer.Thumbprint(),
				Method: mGranted, Requirement: &challenge.Requirement{MaxAge: 300 * time.Second}})
			if err != nil || out.Challenge == nil {
				t.Fatalf("other deployment: %v", err)
			}
			alice := atkAlice(e)
			ans := atkTOTPAnswer(t, e, alice, out.Challenge, "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{
		// What a person approves is the summary text: a request value must
		// not read as another item of it (what you see is what you sign).
		name: "request value imitating another summary item",
		want: atkStepUp(challenge.ReasonRequired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			req := &policytestv1.SensitiveRequest{AmountMinor: 99_999_900, Currency: "EUR", ToIban: "DE89370400440532013000, amount 1.00 EUR"}
			return func() error {
				_, err := e.raw().Sensitive(alice.ctx(t, mSensitive), req)
				ch := interceptor.ChallengeFromError(err)
				if ch == nil {
					return err
				}
				if n := atkSummaryParts(ch.GetSummaryText()); n != len(ch.GetSummary()) {
					return fmt.Errorf("summary text %q reads as %d items, the request has %d", ch.GetSummaryText(), n, len(ch.GetSummary()))
				}
				return err
			}
		},
	},
	{name: "grant passed off as a challenge", want: atkStepUp(challenge.ReasonChallengeMalformed),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			g := atkGrant(t, e, alice, mGranted)
			e.clock.Advance(30 * time.Second)
			ans := atkTOTPAnswer(t, e, alice, atkWithChallenge(ch, g), "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
}

func TestChallengeAttacks(t *testing.T) { runAtkCases(t, challengeAttacks) }

// atkSummaryParts counts the items a reader finds in a one-line summary
// ("approve Svc.Method: label value, label value"): the parts separated by
// ", " outside double quotes.
func atkSummaryParts(text string) int {
	_, items, ok := strings.Cut(text, ": ")
	if !ok {
		return 0
	}
	n, quoted := 1, false
	for i := 0; i < len(items); i++ {
		switch {
		case items[i] == '\\' && quoted:
			i++
		case items[i] == '"':
			quoted = !quoted
		case !quoted && strings.HasPrefix(items[i:], ", "):
			n++
		}
	}
	return n
}

// ---- answers ----

var atkDeviceKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// atkDeviceOpts enables device keys: alice has atkDeviceKey registered.
func atkDeviceOpts(testing.TB) envOpts {
	return envOpts{stepUpOpts: []challenge.Option{challenge.WithDeviceKeys(challenge.DeviceKeysFunc(
		func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
			if sub == "alice" {
				return []crypto.PublicKey{atkDeviceKey().Public()}, nil
			}
			return nil, challenge.ErrUnknownSubject
		}))}}
}

func atkDeviceEvidence(t testing.TB, key *ecdsa.PrivateKey, ch *stepupv1.StepUpChallenge) *challenge.Evidence {
	t.Helper()
	r, err := challenge.DeviceKeyResponder(key)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Respond(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// atkAnswerCase presents on Granted an answer that craft makes from a fresh
// challenge.
func atkAnswerCase(name string, craft func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string, want refusal) atkCase {
	return atkCase{name: name, want: want, prep: func(t *testing.T, e *env) func() error {
		alice := atkAlice(e)
		extra := craft(t, e, alice, atkChallenge(t, e, alice, mGranted))
		return func() error { return atkDo(alice.ctx(t, mGranted, extra...), e, mGranted) }
	}}
}

var answerAttacks = []atkCase{
	atkAnswerCase("factor the challenge does not allow", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		// The server has no device-key verifier; the client lists the factor
		// itself to get past its own check.
		c := proto.CloneOf(ch)
		c.Factors = append(c.Factors, stepupv1.Factor_FACTOR_DEVICE_KEY)
		return []string{"stepup-answer", atkAnswer(t, p, c, atkDeviceEvidence(t, atkDeviceKey(), ch))}
	}, atkStepUp(challenge.ReasonFactorNotAllowed)),
	atkAnswerCase("unknown factor name", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		payload := atkJSON(t, map[string]any{"chl": ch.GetChallenge(), "fac": "sms", "otp": atkCode(t, e.clock.Now()), "iat": e.clock.Now().Unix()})
		a, err := p.signer.SignJWS(challenge.AnswerType, payload)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"stepup-answer", a}
	}, atkStepUp(challenge.ReasonFactorNotAllowed)),
	atkAnswerCase("malformed answer", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		return []string{"stepup-answer", "not.an.answer"}
	}, atkStepUp(challenge.ReasonAnswerMalformed)),
	atkAnswerCase("answer with a bad signature", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		a := atkTOTPAnswer(t, e, p, ch, "")
		i := len(a) - 20
		c := byte('A')
		if a[i] == 'A' {
			c = 'B'
		}
		return []string{"stepup-answer", a[:i] + string(c) + a[i+1:]}
	}, atkStepUp(challenge.ReasonAnswerBadSignature)),
	atkAnswerCase("answer with alg none", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		h := map[string]any{"typ": challenge.AnswerType, "alg": "none", "jwk": json.RawMessage(p.signer.PublicJWK())}
		body := map[string]any{"chl": ch.GetChallenge(), "fac": "totp", "otp": atkCode(t, e.clock.Now()), "iat": e.clock.Now().Unix()}
		return []string{"stepup-answer", atkCompact(atkJSON(t, h), atkJSON(t, body), nil)}
	}, atkStepUp(challenge.ReasonAnswerMalformed)),
	atkAnswerCase("answer with two kinds of evidence", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		payload := atkJSON(t, map[string]any{"chl": ch.GetChallenge(), "fac": "totp", "otp": atkCode(t, e.clock.Now()),
			"dev": "x.y.z", "iat": e.clock.Now().Unix()})
		a, err := p.signer.SignJWS(challenge.AnswerType, payload)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"stepup-answer", a}
	}, atkStepUp(challenge.ReasonAnswerMalformed)),
	atkAnswerCase("DPoP proof passed off as an answer", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		proof, _ := p.signer.Proof("POST", "https://api.example"+mGranted, p.token)
		return []string{"stepup-answer", proof}
	}, atkStepUp(challenge.ReasonAnswerMalformed)),
	atkAnswerCase("two stepup-answer values", func(t testing.TB, e *env, p *atkPrincipal, ch *stepupv1.StepUpChallenge) []string {
		a := atkTOTPAnswer(t, e, p, ch, "")
		return []string{"stepup-answer", a, "stepup-answer", a}
	}, atkRequest(interceptor.ReasonMetadataDuplicate)),
	{name: "device evidence signed by the DPoP key", opts: atkDeviceOpts, want: atkStepUp(challenge.ReasonDeviceKeyUnknown),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			ans := atkAnswer(t, alice, ch, atkDeviceEvidence(t, alice.key, ch))
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "device evidence for another challenge", opts: atkDeviceOpts, want: atkStepUp(challenge.ReasonDeviceSignatureInvalid),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			first := atkChallenge(t, e, alice, mGranted)
			second := atkChallenge(t, e, alice, mGranted)
			ans := atkAnswer(t, alice, second, atkDeviceEvidence(t, atkDeviceKey(), first))
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "device evidence whose chh has an escaped line feed", opts: atkDeviceOpts, want: atkStepUp(challenge.ReasonDeviceSignatureInvalid),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			sum := sha256.Sum256([]byte(ch.GetChallenge()))
			chh := b64u.EncodeToString(sum[:])
			device, err := dpop.NewSigner(atkDeviceKey())
			if err != nil {
				t.Fatal(err)
			}
			dev, err := device.SignJWS(challenge.DeviceType, []byte(`{"chh":"`+chh[:20]+`\n`+chh[20:]+`","iat":1}`))
			if err != nil {
				t.Fatal(err)
			}
			ans := atkAnswer(t, alice, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_DEVICE_KEY, Device: dev})
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "control: device evidence", opts: atkDeviceOpts, want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			ans := atkAnswer(t, alice, ch, atkDeviceEvidence(t, atkDeviceKey(), ch))
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
}

func TestAnswerAttacks(t *testing.T) { runAtkCases(t, answerAttacks) }

// ---- grants ----

// atkExtendGrant returns grant with its exp a day later, under the
// original MAC.
func atkExtendGrant(t testing.TB, grant string) string {
	t.Helper()
	return atkTamper(t, grant, func(h, p []byte) ([]byte, []byte) {
		var c map[string]any
		_ = json.Unmarshal(p, &c)
		c["exp"] = c["exp"].(float64) + 86400
		return h, atkJSON(t, c)
	})
}

// atkUsedGrant returns a grant of p on Granted that p has presented once,
// successfully: its claims are in the Service's verified-grant cache, so
// the grant cases below judge each check with the grant cached (the
// Service's own tests cover the first presentation).
func atkUsedGrant(t testing.TB, e *env, p *atkPrincipal) string {
	t.Helper()
	g := atkGrant(t, e, p, mGranted)
	if err := atkDo(p.ctx(t, mGranted, "stepup-grant", g), e, mGranted); err != nil {
		t.Fatal(err)
	}
	return g
}

var grantAttacks = []atkCase{
	{name: "grant for another subject", want: atkStepUp(challenge.ReasonGrantWrongSubject),
		prep: func(t *testing.T, e *env) func() error {
			g := atkUsedGrant(t, e, atkAlice(e))
			bob := atkAs(e, tokenOpts{Subject: "bob"})
			return func() error { return atkDo(bob.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "expired grant", want: atkStepUp(challenge.ReasonGrantExpired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkUsedGrant(t, e, alice)
			e.clock.Advance(300 * time.Second) // Granted's max_age: exp is reached
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "revoked grant", want: atkStepUp(challenge.ReasonGrantRevoked),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkUsedGrant(t, e, alice)
			if err := e.stepUp.Revocations().RevokeGrants(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "grant with a forged MAC", want: atkStepUp(challenge.ReasonGrantBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkExtendGrant(t, atkGrant(t, e, alice, mGranted))
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "grant with a forged MAC after its genuine form was used", want: atkStepUp(challenge.ReasonGrantBadSignature),
		prep: func(t *testing.T, e *env) func() error {
			// The genuine grant's claims are in the Service's verified-grant
			// cache; the extended one is another token, verified in full.
			alice := atkAlice(e)
			g := atkExtendGrant(t, atkUsedGrant(t, e, alice))
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "grant used by its owner, then presented with another DPoP key", want: atkStepUp(challenge.ReasonGrantWrongKey),
		prep: func(t *testing.T, e *env) func() error {
			g := atkUsedGrant(t, e, atkAlice(e))
			thief := atkOther(t, e, "alice")
			return func() error { return atkDo(thief.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "grant on a request-bound method", want: atkStepUp(challenge.ReasonRequired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkGrant(t, e, alice, mGranted)
			return func() error { return atkDo(alice.ctx(t, mSensitive, "stepup-grant", g), e, mSensitive) }
		}},
	{name: "grant older than a stricter max_age", want: atkStepUp(challenge.ReasonGrantTooOld),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkUsedGrant(t, e, alice)    // max_age 300 s
			e.clock.Advance(61 * time.Second) // Watch allows 60 s
			return func() error { return atkDo(alice.ctx(t, mWatch, "stepup-grant", g), e, mWatch) }
		}},
	{name: "challenge passed off as a grant", want: atkStepUp(challenge.ReasonGrantMalformed),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", ch.GetChallenge()), e, mGranted) }
		}},
	{name: "two stepup-grant values", want: atkRequest(interceptor.ReasonMetadataDuplicate),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkGrant(t, e, alice, mGranted)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g, "stepup-grant", g), e, mGranted) }
		}},
	{name: "control: grant", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkGrant(t, e, alice, mGranted)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
}

func TestGrantAttacks(t *testing.T) { runAtkCases(t, grantAttacks) }

// ---- TOTP (RFC 6238) ----

// atkWrongCode returns a 6-digit code that no accepted time step around
// now matches.
func atkWrongCode(t testing.TB, e *env) string { return atkWrongCodeAt(e.clock.Now()) }

func atkTOTPCase(name string, code func(t testing.TB, e *env) string, want refusal) atkCase {
	return atkCase{name: name, want: want, prep: func(t *testing.T, e *env) func() error {
		alice := atkAlice(e)
		ch := atkChallenge(t, e, alice, mGranted)
		ans := atkTOTPAnswer(t, e, alice, ch, code(t, e))
		return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
	}}
}

var totpAttacks = []atkCase{
	{name: "reused code", want: atkStepUp(challenge.ReasonTOTPReused),
		prep: func(t *testing.T, e *env) func() error {
			// The code a shoulder-surfer saw, on a challenge of their own
			// making, in the same time step (RFC 6238 §5.2).
			alice := atkAlice(e)
			code := atkCode(t, e.clock.Now())
			if err := atkDo(alice.ctx(t, mGranted, "stepup-answer", atkTOTPAnswer(t, e, alice, atkChallenge(t, e, alice, mGranted), code)), e, mGranted); err != nil {
				t.Fatal(err)
			}
			ans := atkTOTPAnswer(t, e, alice, atkChallenge(t, e, alice, mGranted), code)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	atkTOTPCase("wrong code", atkWrongCode, atkStepUp(challenge.ReasonTOTPInvalid)),
	atkTOTPCase("code of a step outside the skew", func(t testing.TB, e *env) string {
		return atkCode(t, e.clock.Now().Add(-90*time.Second))
	}, atkStepUp(challenge.ReasonTOTPInvalid)),
	atkTOTPCase("code with a non-digit", func(testing.TB, *env) string { return "12345a" }, atkStepUp(challenge.ReasonTOTPInvalid)),
	atkTOTPCase("code of 7 digits", func(t testing.TB, e *env) string { return atkCode(t, e.clock.Now()) + "0" }, atkStepUp(challenge.ReasonTOTPInvalid)),
	{name: "too many answers to one challenge", want: refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.ReasonStepUpLocked},
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, mGranted)
			for i := 0; i < challenge.DefaultPerChallenge; i++ {
				_ = atkDo(alice.ctx(t, mGranted, "stepup-answer", atkTOTPAnswer(t, e, alice, ch, atkWrongCode(t, e))), e, mGranted)
			}
			// Even the right code is refused on this challenge now.
			ans := atkTOTPAnswer(t, e, alice, ch, "")
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
}

func TestTOTPAttacks(t *testing.T) { runAtkCases(t, totpAttacks) }

// ---- WebAuthn ----

type atkAuthn struct {
	authn *webauthn.SoftAuthenticator
}

func atkWebAuthnEnv(t *testing.T) (*env, *atkAuthn) {
	t.Helper()
	e, authn, _ := newWebAuthnEnv(t)
	return e, &atkAuthn{authn: authn}
}

func (a *atkAuthn) evidence(t testing.TB, ch *stepupv1.StepUpChallenge) *challenge.Evidence {
	t.Helper()
	assertion, err := a.authn.GetAssertion(context.Background(), ch.GetWebauthnRequestOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_WEBAUTHN, WebAuthn: assertion}
}

type atkWebAuthnCase struct {
	name string
	prep func(t *testing.T, e *env, a *atkAuthn) func() error
	want refusal
}

var webAuthnAttacks = []atkWebAuthnCase{
	{name: "assertion for another origin", want: atkStepUp(challenge.ReasonWebAuthnInvalid),
		prep: func(t *testing.T, e *env, a *atkAuthn) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, atkApprove)
			a.authn.SetOrigin("https://api.example.evil.example")
			ans := atkAnswer(t, alice, ch, a.evidence(t, ch))
			return func() error { return atkDo(alice.ctx(t, atkApprove, "stepup-answer", ans), e, atkApprove) }
		}},
	{name: "assertion for another RP ID", want: atkStepUp(challenge.ReasonWebAuthnInvalid),
		prep: func(t *testing.T, e *env, a *atkAuthn) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, atkApprove)
			a.authn.SetRPID("evil.example")
			ans := atkAnswer(t, alice, ch, a.evidence(t, ch))
			return func() error { return atkDo(alice.ctx(t, atkApprove, "stepup-answer", ans), e, atkApprove) }
		}},
	{name: "assertion replayed on another challenge", want: atkStepUp(challenge.ReasonWebAuthnInvalid),
		prep: func(t *testing.T, e *env, a *atkAuthn) func() error {
			alice := atkAlice(e)
			first := atkChallenge(t, e, alice, atkApprove)
			ev := a.evidence(t, first)
			if err := atkDo(alice.ctx(t, atkApprove, "stepup-answer", atkAnswer(t, alice, first, ev)), e, atkApprove); err != nil {
				t.Fatal(err)
			}
			ans := atkAnswer(t, alice, atkChallenge(t, e, alice, atkApprove), ev)
			return func() error { return atkDo(alice.ctx(t, atkApprove, "stepup-answer", ans), e, atkApprove) }
		}},
	{name: "TOTP grant on a WebAuthn-only method", want: atkStepUp(challenge.ReasonGrantFactorNotAllowed),
		prep: func(t *testing.T, e *env, a *atkAuthn) func() error {
			alice := atkAlice(e)
			g := atkGrant(t, e, alice, mGranted) // Granted accepts every configured factor
			return func() error { return atkDo(alice.ctx(t, atkApprove, "stepup-grant", g), e, atkApprove) }
		}},
	{name: "control: assertion", want: atkAllowed,
		prep: func(t *testing.T, e *env, a *atkAuthn) func() error {
			alice := atkAlice(e)
			ch := atkChallenge(t, e, alice, atkApprove)
			ans := atkAnswer(t, alice, ch, a.evidence(t, ch))
			return func() error { return atkDo(alice.ctx(t, atkApprove, "stepup-answer", ans), e, atkApprove) }
		}},
}

func TestWebAuthnAttacks(t *testing.T) {
	for _, c := range webAuthnAttacks {
		t.Run(c.name, func(t *testing.T) {
			e, a := atkWebAuthnEnv(t)
			runAtk(t, e, c.prep(t, e, a), c.want)
		})
	}
}

// ---- streams: the attacks at stream open ----

var atkStreamKinds = []kind{
	{"server-stream", mWatch, func(ctx context.Context, c policytestv1.GuardedServiceClient) (string, error) {
		s, err := c.Watch(ctx, &policytestv1.PlainRequest{Text: "hi"})
		if err != nil {
			return "", err
		}
		r, err := s.Recv()
		if err != nil {
			return "", err
		}
		for err == nil {
			_, err = s.Recv()
		}
		return r.GetText(), nil
	}},
	kinds[1], // client-stream
	kinds[2], // bidi-stream
}

// streamAttacks run on every streaming kind; their creds may make calls of
// their own first (to consume a proof, obtain a challenge).
var streamAttacks = []forgery{
	{"replayed proof", func(e *env, m string) []string {
		creds := atkAlice(e).creds(e.t, m)
		_ = atkDo(withCreds(context.Background(), creds...), e, m) // first use (Watch: refused for step-up, proof consumed)
		return creds
	}, atkProofReason(dpop.ReasonReplayed)},
	{"unary proof at stream open", func(e *env, m string) []string {
		p := atkAlice(e)
		proof, _ := p.signer.Proof("POST", "https://api.example"+mPlain, p.token)
		return []string{"authorization", "DPoP " + p.token, "dpop", proof}
	}, atkProofReason(dpop.ReasonBadURI)},
	{"stolen token with the thief's proof", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		thief := atkOther(e.t, e, "alice")
		proof, _ := thief.signer.Proof("POST", "https://api.example"+m, tok)
		return []string{"authorization", "DPoP " + tok, "dpop", proof}
	}, atkProofReason(dpop.ReasonKeyMismatch)},
	{"bound token as bearer at stream open", func(e *env, m string) []string {
		return []string{"authorization", "Bearer " + e.boundToken(tokenOpts{})}
	}, atkToken(interceptor.ReasonBoundTokenAsBearer)},
	{"expired token at stream open", func(e *env, m string) []string {
		now := e.clock.Now()
		return atkAs(e, tokenOpts{IssuedAt: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Hour)}).creds(e.t, m)
	}, atkToken(interceptor.ReasonTokenExpired)},
}

// streamStepUpAttacks run on Watch, the streaming method with step-up.
var streamStepUpAttacks = []forgery{
	{"no step-up answer at stream open", func(e *env, m string) []string {
		return atkAlice(e).creds(e.t, m)
	}, atkStepUp(challenge.ReasonRequired)},
	{"answer signed by another key at stream open", func(e *env, m string) []string {
		alice := atkAlice(e)
		ch := atkChallenge(e.t, e, alice, m)
		mallory := &atkPrincipal{signer: otherKeySigner(e.t, e.clock.Now), token: alice.token}
		return alice.creds(e.t, m, "stepup-answer", atkTOTPAnswer(e.t, e, mallory, ch, ""))
	}, atkStepUp(challenge.ReasonAnswerWrongKey)},
	{"answer for a unary method at stream open", func(e *env, m string) []string {
		alice := atkAlice(e)
		ch := atkChallenge(e.t, e, alice, mGranted)
		return alice.creds(e.t, m, "stepup-answer", atkTOTPAnswer(e.t, e, alice, ch, ""))
	}, atkStepUp(challenge.ReasonChallengeWrongMethod)},
}

func TestStreamOpenAttacks(t *testing.T) {
	run := func(t *testing.T, k kind, f forgery) {
		e := newEnv(t, envOpts{})
		ctx := withCreds(context.Background(), f.creds(e, k.method)...)
		before := e.server.total()
		_, err := k.call(ctx, e.raw())
		assertRefused(t, e, err, f.want)
		if ev := e.audit.last(t); !ev.Stream || ev.Method != k.method {
			t.Errorf("audit event = %+v, want a stream event for %s", ev, k.method)
		}
		if n := e.server.total() - before; n != 0 {
			t.Fatalf("a handler ran %d times for a refused stream", n)
		}
	}
	for _, k := range atkStreamKinds {
		for _, f := range streamAttacks {
			t.Run(k.name+"/"+f.name, func(t *testing.T) { run(t, k, f) })
		}
	}
	// The token and proof forgeries of guard_test.go, which runs them on the
	// unary and client/bidi kinds, at server-stream open.
	for _, f := range forgeries {
		t.Run("server-stream/"+f.name, func(t *testing.T) { run(t, atkStreamKinds[0], f) })
	}
	for _, f := range streamStepUpAttacks {
		t.Run("server-stream/"+f.name, func(t *testing.T) { run(t, atkStreamKinds[0], f) })
	}
}

// ---- downgrades ----

// atkDowngradeOpts accept bearer tokens on Plain, and on Granted with an
// acr-satisfiable step-up (RFC 9470).
func atkDowngradeOpts(t testing.TB) envOpts {
	return envOpts{guardOpts: []interceptor.Option{interceptor.WithFiles(reannotated(t, map[string]*stepupv1.Policy{
		mPlain: {InsecureAllowBearer: proto.Bool(true)},
		mGranted: {InsecureAllowBearer: proto.Bool(true), StepUp: &stepupv1.StepUp{
			AcrValues: []string{"urn:example:mfa"}, MaxAge: durationpb.New(300 * time.Second)}},
	}))}}
}

func atkACRCase(name, method, acr string, age time.Duration, want refusal) atkCase {
	return atkCase{name: name, opts: atkDowngradeOpts, want: want, prep: func(t *testing.T, e *env) func() error {
		p := atkAs(e, tokenOpts{ACR: acr, AuthTime: e.clock.Now().Add(-age)})
		return func() error { return atkDo(p.ctx(t, method), e, method) }
	}}
}

var downgradeAttacks = []atkCase{
	{name: "dropping the step-up answer", want: atkStepUp(challenge.ReasonRequired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			return func() error {
				err := atkDo(alice.ctx(t, mSensitive), e, mSensitive)
				if interceptor.ChallengeFromError(err) == nil {
					t.Errorf("no challenge in %v", err)
				}
				return err
			}
		}},
	{name: "empty step-up answer", want: atkStepUp(challenge.ReasonRequired),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			return func() error { return atkDo(alice.ctx(t, mSensitive, "stepup-answer", ""), e, mSensitive) }
		}},
	{name: "bearer token on a step-up method that accepts bearer", opts: atkDowngradeOpts, want: atkToken(interceptor.ReasonDPoPRequired),
		prep: func(t *testing.T, e *env) func() error {
			tok := e.issuer.mint(t, e.clock.Now(), tokenOpts{Scope: "guarded", ACR: "urn:example:mfa", AuthTime: e.clock.Now()})
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "Bearer "+tok), e, mGranted)
			}
		}},
	{name: "bound token as bearer where bearer is accepted", opts: atkDowngradeOpts, want: atkToken(interceptor.ReasonBoundTokenAsBearer),
		prep: func(t *testing.T, e *env) func() error {
			tok := e.boundToken(tokenOpts{})
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "Bearer "+tok), e, mPlain)
			}
		}},
	{name: "control: unbound bearer where bearer is accepted", opts: atkDowngradeOpts, want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			tok := e.issuer.mint(t, e.clock.Now(), tokenOpts{Scope: "guarded"})
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "Bearer "+tok), e, mPlain)
			}
		}},
	atkACRCase("token acr on a request-bound method", mSensitive, "urn:example:mfa", 0, atkStepUp(challenge.ReasonRequired)),
	atkACRCase("token acr with a stale auth_time", mGranted, "urn:example:mfa", 301*time.Second, atkStepUp(challenge.ReasonRequired)),
	atkACRCase("token acr the policy does not accept", mGranted, "urn:example:pwd", 0, atkStepUp(challenge.ReasonRequired)),
	atkACRCase("control: token acr", mGranted, "urn:example:mfa", 10*time.Second, atkAllowed),
	atkACRCase("token auth_time an hour in the future", mGranted, "urn:example:mfa", -time.Hour, atkToken(interceptor.ReasonTokenInvalidClaims)),
	{name: "token auth_time of 1e19", opts: atkDowngradeOpts, want: atkToken(interceptor.ReasonTokenInvalidClaims),
		prep: func(t *testing.T, e *env) func() error {
			c := atkTokenClaims(e)
			c["acr"], c["auth_time"] = "urn:example:mfa", 1e19
			p := atkWithToken(e, atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey()))
			return func() error { return atkDo(p.ctx(t, mGranted), e, mGranted) }
		}},
	{
		// A policy whose factors the server has no verifier for cannot be
		// enforced (Guard.CheckCoverage reports it at startup): a call is
		// refused as the server's fault, never let through nor reported as
		// a store outage.
		name: "step-up on a method whose factors are not configured",
		want: refusal{codes.Internal, interceptor.WireUnavailable, interceptor.ReasonInternal},
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e) // this env has TOTP only; Approve requires WebAuthn
			return func() error { return atkDo(alice.ctx(t, atkApprove), e, atkApprove) }
		},
	},
	{name: "proof for another server under its authority", want: atkProofReason(dpop.ReasonBadURI),
		prep: func(t *testing.T, e *env) func() error {
			// The client names the other server in :authority and in htu;
			// the Guard checks htu against its configured authorities.
			p := atkAlice(e)
			proof, _ := p.signer.Proof("POST", "https://evil.example"+mPlain, p.token)
			c := policytestv1.NewGuardedServiceClient(e.conn(grpc.WithAuthority("evil.example")))
			return func() error {
				_, err := c.Plain(withCreds(context.Background(), "authorization", "DPoP "+p.token, "dpop", proof), &policytestv1.PlainRequest{})
				return err
			}
		}},
	{name: "http htu over TLS", want: atkProofReason(dpop.ReasonBadURI),
		prep: func(t *testing.T, e *env) func() error {
			p := atkAlice(e)
			proof, _ := p.signer.Proof("POST", "http://api.example"+mPlain, p.token)
			c := e.serveTLS()
			return func() error {
				_, err := c.Plain(withCreds(context.Background(), "authorization", "DPoP "+p.token, "dpop", proof), &policytestv1.PlainRequest{})
				return err
			}
		}},
	{name: "control: https htu over TLS", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			p := atkAlice(e)
			c := e.serveTLS()
			return func() error {
				_, err := c.Plain(p.ctx(t, mPlain), &policytestv1.PlainRequest{})
				return err
			}
		}},
	{name: "control: http htu over plaintext", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			p := atkAlice(e)
			proof, _ := p.signer.Proof("POST", "http://api.example"+mPlain, p.token)
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "DPoP "+p.token, "dpop", proof), e, mPlain)
			}
		}},
}

func TestDowngradeAttacks(t *testing.T) { runAtkCases(t, downgradeAttacks) }

// ---- input limits, from both sides ----

// atkSizedToken is a valid token for alice bound to the env's key, exactly
// size bytes long.
func atkSizedToken(t testing.TB, e *env, size int) string {
	return atkSized(t, size, string(atkJSON(t, atkTokenHeader())), string(atkJSON(t, atkTokenClaims(e))), 86, atkES256(e.issuer.PrivateKey()))
}

func atkSizedProof(t testing.TB, e *env, method, token string, size int) string {
	h := atkJSON(t, atkProofHeader(e))
	c := atkJSON(t, atkProofClaims(e, method, token))
	return atkSized(t, size, string(h), string(c), 86, atkES256(e.key.(*ecdsa.PrivateKey)))
}

func atkSizedAnswer(t testing.TB, e *env, ch *stepupv1.StepUpChallenge, size int) string {
	h := atkJSON(t, map[string]any{"typ": challenge.AnswerType, "alg": "ES256", "jwk": json.RawMessage(e.signer.PublicJWK())})
	body := atkJSON(t, map[string]any{"chl": ch.GetChallenge(), "fac": "totp", "otp": atkCode(t, e.clock.Now()), "iat": e.clock.Now().Unix()})
	return atkSized(t, size, string(h), string(body), 86, atkES256(e.key.(*ecdsa.PrivateKey)))
}

// atkKnownKey is the step-up key of the grant limit cases: knowing it, the
// test can sign a grant of any size, as the server would.
var atkKnownKey = challenge.Key{ID: "k1", Secret: bytes.Repeat([]byte("K"), challenge.MinSecretSize)}

func atkKnownKeyOpts(t testing.TB) envOpts {
	ks, err := challenge.NewKeySet(atkKnownKey)
	if err != nil {
		t.Fatal(err)
	}
	return envOpts{stepUpOpts: []challenge.Option{challenge.WithKeys(ks)}}
}

// atkSizedGrant re-signs grant (issued under atkKnownKey) padded to size
// bytes (docs/STEPUP.md: HS256 with HMAC-SHA256(secret, typ) as the key).
func atkSizedGrant(t testing.TB, grant string, size int) string {
	parts := strings.Split(grant, ".")
	h, _ := b64u.DecodeString(parts[0])
	p, _ := b64u.DecodeString(parts[1])
	m := hmac.New(sha256.New, atkKnownKey.Secret)
	m.Write([]byte(challenge.GrantType))
	return atkSized(t, size, string(h), string(p), 43, atkHS256(m.Sum(nil)))
}

// atkNested is a claims member holding levels nested objects.
func atkNested(levels int) string {
	return strings.Repeat(`{"a":`, levels) + "1" + strings.Repeat("}", levels)
}

func atkDepthCase(name string, depth int, want refusal) atkCase {
	return atkProofCase(name, func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		c["deep"] = json.RawMessage(atkNested(depth - 1)) // the claims object is level 1
		return atkSigned(t, e, h, c), ""
	}, want)
}

func atkJTICase(name string, n int, want refusal) atkCase {
	return atkProofCase(name, func(t testing.TB, e *env, tok string, h, c map[string]any) (string, string) {
		jti := atkJTI() // 22 characters
		if n <= len(jti) {
			jti = jti[:n]
		} else {
			jti += strings.Repeat("j", n-len(jti))
		}
		c["jti"] = jti
		return atkSigned(t, e, h, c), ""
	}, want)
}

func atkRSACase(name string, bits int, want refusal) atkCase {
	return atkProofCase(name, atkFakeRSAProof(bits), want)
}

var limitCases = []atkCase{
	{name: "authorization at its limit", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			tok := atkSizedToken(t, e, interceptor.MaxAuthorizationSize-len("DPoP "))
			return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
		}},
	{name: "authorization one byte over", want: atkRequest(interceptor.ReasonMetadataTooLarge),
		prep: func(t *testing.T, e *env) func() error {
			tok := atkSizedToken(t, e, interceptor.MaxAuthorizationSize-len("DPoP ")) + "A"
			return func() error { return atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain) }
		}},
	{name: "proof at its limit", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			tok := e.boundToken(tokenOpts{})
			proof := atkSizedProof(t, e, mPlain, tok, interceptor.MaxProofSize)
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", proof), e, mPlain)
			}
		}},
	{name: "proof one byte over", want: atkRequest(interceptor.ReasonMetadataTooLarge),
		prep: func(t *testing.T, e *env) func() error {
			tok := e.boundToken(tokenOpts{})
			proof := atkSizedProof(t, e, mPlain, tok, interceptor.MaxProofSize) + "A"
			return func() error {
				return atkDo(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", proof), e, mPlain)
			}
		}},
	{name: "answer at its limit", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ans := atkSizedAnswer(t, e, atkChallenge(t, e, alice, mGranted), interceptor.MaxAnswerSize)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "answer one byte over", want: atkRequest(interceptor.ReasonMetadataTooLarge),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			ans := atkSizedAnswer(t, e, atkChallenge(t, e, alice, mGranted), interceptor.MaxAnswerSize) + "A"
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-answer", ans), e, mGranted) }
		}},
	{name: "grant at its limit", opts: atkKnownKeyOpts, want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkSizedGrant(t, atkGrant(t, e, alice, mGranted), interceptor.MaxGrantSize)
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	{name: "grant one byte over", opts: atkKnownKeyOpts, want: atkRequest(interceptor.ReasonMetadataTooLarge),
		prep: func(t *testing.T, e *env) func() error {
			alice := atkAlice(e)
			g := atkSizedGrant(t, atkGrant(t, e, alice, mGranted), interceptor.MaxGrantSize) + "A"
			return func() error { return atkDo(alice.ctx(t, mGranted, "stepup-grant", g), e, mGranted) }
		}},
	atkDepthCase("JSON depth at its limit", 16, atkAllowed),
	atkDepthCase("JSON depth one over", 17, atkProofReason(dpop.ReasonMalformed)),
	atkJTICase("jti of 16 characters", 16, atkAllowed),
	atkJTICase("jti of 15 characters", 15, atkProofReason(dpop.ReasonMalformed)),
	atkJTICase("jti of 256 characters", 256, atkAllowed),
	atkJTICase("jti of 257 characters", 257, atkProofReason(dpop.ReasonMalformed)),
	{name: "RSA key of 2048 bits", want: atkAllowed,
		prep: func(t *testing.T, e *env) func() error {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			s, err := dpop.NewSigner(k, dpop.WithClock(e.clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			p := &atkPrincipal{signer: s, token: e.issuer.mint(t, e.clock.Now(), tokenOpts{JKT: s.Thumbprint(), Scope: "guarded"})}
			return func() error { return atkDo(p.ctx(t, mPlain), e, mPlain) }
		}},
	atkRSACase("RSA key of 2047 bits", 2047, atkProofReason(dpop.ReasonWeakKey)),
	// A real 8192-bit key takes minutes to generate; a modulus of that size
	// passes every check before the signature, which then fails.
	atkRSACase("RSA key of 8192 bits", 8192, atkProofReason(dpop.ReasonBadSignature)),
	atkRSACase("RSA key of 8193 bits", 8193, atkProofReason(dpop.ReasonWeakKey)),
	{name: "subject of 1024 bytes on a step-up method", want: atkStepUp(challenge.ReasonRequired),
		prep: func(t *testing.T, e *env) func() error {
			p := atkAs(e, tokenOpts{Subject: strings.Repeat("s", 1024)})
			return func() error { return atkDo(p.ctx(t, mGranted), e, mGranted) }
		}},
}

func TestInputLimits(t *testing.T) { runAtkCases(t, limitCases) }

// ---- requests the Guard cannot read completely ----

// atkUnreadable is the refusal of a step-up request the Guard cannot read
// completely (docs/PROTOCOL.md §13.6).
func atkUnreadable(r challenge.Reason) refusal {
	return refusal{codes.InvalidArgument, interceptor.WireInvalidRequest, interceptor.Reason(r)}
}

func atkRecord(num protowire.Number, typ protowire.Type, value []byte) []byte {
	return append(protowire.AppendTag(nil, num, typ), value...)
}

// atkSpelt sends to a step-up method, as p with every credential, the
// request msg claims to be, spelt on the wire as wire (which a handler
// forwarding the request downstream would pass on as it decoded it).
func atkSpelt(method string, wire func(t testing.TB) []byte, p func(e *env) *atkPrincipal) func(t *testing.T, e *env) func() error {
	return func(t *testing.T, e *env) func() error {
		ctx := context.Background()
		if p != nil {
			ctx = p(e).ctx(t, method)
		}
		codec := grpc.ForceCodecV2(testkit.Spelling{Wire: wire(t)})
		return func() error {
			var err error
			switch method {
			case mSensitive:
				_, err = e.raw().Sensitive(ctx, transferRequest(12_000), codec)
			case mGranted:
				_, err = e.raw().Granted(ctx, &policytestv1.PlainRequest{Text: "hi"}, codec)
			default:
				t.Fatalf("no call for %s", method)
			}
			return err
		}
	}
}

// atkTransferWire is transferRequest(12_000) followed by extra records.
func atkTransferWire(extra ...[]byte) func(t testing.TB) []byte {
	return func(t testing.TB) []byte {
		b, err := proto.Marshal(transferRequest(12_000))
		if err != nil {
			t.Fatal(err)
		}
		return slices.Concat(append([][]byte{b}, extra...)...)
	}
}

var requestAttacks = []atkCase{
	{name: "control: the request as its type declares it", prep: atkSpelt(mSensitive, atkTransferWire(), atkAlice),
		want: atkStepUp(challenge.ReasonRequired)},
	{name: "amount repeated with another wire type", prep: atkSpelt(mSensitive,
		atkTransferWire(atkRecord(1, protowire.Fixed64Type, protowire.AppendFixed64(nil, 99_000_00))), atkAlice),
		want: atkUnreadable(challenge.ReasonRequestUnknownField)},
	{name: "a field the server does not declare", prep: atkSpelt(mSensitive,
		atkTransferWire(atkRecord(15, protowire.BytesType, protowire.AppendString(nil, "DE00"))), atkAlice),
		want: atkUnreadable(challenge.ReasonRequestUnknownField)},
	{name: "an undeclared field on a reusable method", prep: atkSpelt(mGranted,
		func(testing.TB) []byte { return atkRecord(2, protowire.VarintType, protowire.AppendVarint(nil, 1)) }, atkAlice),
		want: atkUnreadable(challenge.ReasonRequestUnknownField)},
	{name: "an undeclared field from a caller without a token", prep: atkSpelt(mSensitive,
		atkTransferWire(atkRecord(15, protowire.VarintType, protowire.AppendVarint(nil, 1))), nil),
		want: atkToken(interceptor.ReasonTokenMissing)},
}

func TestRequestAttacks(t *testing.T) { runAtkCases(t, requestAttacks) }

// ---- the matrix ----

// atkExpectations lists, per test, the expected refusal of every table
// case, so that the matrix cannot claim another code or reason than the
// test asserts.
func atkExpectations() map[string]map[string]refusal {
	out := map[string]map[string]refusal{}
	add := func(test, name string, want refusal) {
		if out[test] == nil {
			out[test] = map[string]refusal{}
		}
		out[test][name] = want
	}
	for test, cases := range map[string][]atkCase{
		"TestTokenAttacks": tokenAttacks, "TestProofAttacks": proofAttacks, "TestNonceAttacks": nonceAttacks,
		"TestChallengeAttacks": challengeAttacks, "TestAnswerAttacks": answerAttacks, "TestGrantAttacks": grantAttacks,
		"TestTOTPAttacks": totpAttacks, "TestDowngradeAttacks": downgradeAttacks, "TestInputLimits": limitCases,
		"TestRequestAttacks": requestAttacks,
	} {
		for _, c := range cases {
			add(test, c.name, c.want)
		}
	}
	for _, c := range webAuthnAttacks {
		add("TestWebAuthnAttacks", c.name, c.want)
	}
	for _, list := range [][]forgery{streamAttacks, streamStepUpAttacks, forgeries} {
		for _, f := range list {
			add("TestStreamOpenAttacks", f.name, f.want)
		}
	}
	for _, f := range forgeries {
		add("TestForgeriesRefused", f.name, f.want)
	}
	return out
}

// atkOwnCases lists the attack cases of this file's tables: each must have
// a row in docs/SECURITY-TESTS.md (controls excepted).
func atkOwnCases() map[string][]string {
	out := map[string][]string{}
	for test, cases := range atkExpectations() {
		if test == "TestForgeriesRefused" {
			continue
		}
		for name := range cases {
			if strings.HasPrefix(name, "control: ") {
				continue
			}
			if test == "TestStreamOpenAttacks" && slices.ContainsFunc(forgeries, func(f forgery) bool { return f.name == name }) {
				continue // guard_test.go's forgeries, one row for all at server-stream open
			}
			out[test] = append(out[test], name)
		}
	}
	return out
}

// matrixRow is one row of a table of docs/SECURITY-TESTS.md. pkg is ""
// for a test of this package, else one of matrixPackages.
type matrixRow struct {
	line         int
	id           string
	pkg          string
	test, tcase  string
	code, reason string
}

// matrixPackages are the other packages whose tests a row may name, as
// `pkg.TestName`, by directory relative to this one: what the gateway
// and the libraries under the Guard are tested with directly.
var matrixPackages = map[string]string{
	"gateway": "../gateway", "dpop": "../dpop", "challenge": "../challenge", "approval": "../approval",
	"challenge/redisstore": "../challenge/redisstore", "cmd/stepup": "../cmd/stepup",
	"examples/bank/server": "../examples/bank/server",
}

var (
	matrixRowRE  = regexp.MustCompile(`^\|\s*([AL]\d+)\s*\|`)
	matrixTestRE = regexp.MustCompile("^`(?:([a-z]+(?:/[a-z]+)*)\\.)?(Test\\w+)`(?:\\s*/\\s*`([^`]+)`)?$")
	matrixCodeRE = regexp.MustCompile("^`([A-Z_]+)`$")
)

// parseSecurityMatrix reads the rows of the attack matrix (ids A01...) and
// of the input limits table (L01...): | id | what | source | test | code | reason |.
func parseSecurityMatrix(doc string) ([]matrixRow, []string) {
	var rows []matrixRow
	var problems []string
	for i, line := range strings.Split(doc, "\n") {
		m := matrixRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 6 {
			problems = append(problems, fmt.Sprintf("line %d (%s): %d cells, want 6", i+1, m[1], len(cells)))
			continue
		}
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		r := matrixRow{line: i + 1, id: m[1]}
		tm := matrixTestRE.FindStringSubmatch(cells[3])
		if tm == nil {
			problems = append(problems, fmt.Sprintf("line %d (%s): test cell %q is not `TestName`, `pkg.TestName` or either / `case`", r.line, r.id, cells[3]))
			continue
		}
		r.pkg, r.test, r.tcase = tm[1], tm[2], tm[3]
		for j, dst := range []*string{&r.code, &r.reason} {
			c := cells[4+j]
			if c == "—" || c == "per case" {
				*dst = c
				continue
			}
			cm := matrixCodeRE.FindStringSubmatch(c)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("line %d (%s): cell %q is not `NAME`, — or per case", r.line, r.id, c))
				continue
			}
			*dst = cm[1]
		}
		rows = append(rows, r)
	}
	return rows, problems
}

// matrixSources is what a package's test files define.
type matrixSources struct {
	funcs    map[string]string // Test function name -> file
	literals map[string]bool   // every string literal
}

// matrixTestSources reads the test files of dirs: the first is this
// package's (its attacks_test.go functions must each have a row).
func matrixTestSources(dirs ...string) (*matrixSources, error) {
	var files []string
	for _, dir := range dirs {
		fs, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	src := &matrixSources{funcs: map[string]string{}, literals: map[string]bool{}}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				// This package's by file name (attacks_test.go's must
				// each have a row), another's by path; this package's win.
				file := name
				if filepath.Dir(name) == filepath.Clean(dirs[0]) {
					file = filepath.Base(name)
				}
				if _, seen := src.funcs[fn.Name.Name]; !seen || file == filepath.Base(file) {
					src.funcs[fn.Name.Name] = file
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					src.literals[s] = true
				}
			}
			return true
		})
	}
	return src, nil
}

// atkKnownReasons are the values of the Reason constants (those given as
// string literals) of the packages in dirs: what an audit event can carry.
func atkKnownReasons(dirs ...string) (map[string]bool, error) {
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, err
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if !strings.HasPrefix(n.Name, "Reason") || i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							if s, err := strconv.Unquote(lit.Value); err == nil {
								out[s] = true
							}
						}
					}
				}
			}
		}
	}
	return out, nil
}

// atkCodeName is the canonical name of a gRPC code: UNAUTHENTICATED.
func atkCodeName(c codes.Code) string {
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// checkSecurityMatrix returns every disagreement between the rows and the
// tests: unknown tests or cases, codes and reasons that do not exist or
// differ from what the test asserts, tests of attacks_test.go and attack
// cases that no row names, ids out of sequence.
func checkSecurityMatrix(rows []matrixRow, srcs map[string]*matrixSources, reasons map[string]bool,
	expect map[string]map[string]refusal, own map[string][]string) []string {
	var problems []string
	bad := func(r matrixRow, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d (%s): %s", r.line, r.id, fmt.Sprintf(format, args...)))
	}
	validCodes := map[string]bool{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		validCodes[atkCodeName(c)] = true
	}
	next := map[byte]int{'A': 1, 'L': 1}
	listed := map[string]bool{}
	for _, r := range rows {
		if want := fmt.Sprintf("%c%02d", r.id[0], next[r.id[0]]); r.id != want {
			bad(r, "id out of sequence, want %s", want)
		}
		next[r.id[0]]++
		src, where := srcs[r.pkg], "the interceptor's"
		if r.pkg != "" {
			where = r.pkg + "'s"
		}
		switch {
		case src == nil:
			bad(r, "%s is not a package whose tests the matrix may name", r.pkg)
		default:
			if _, ok := src.funcs[r.test]; !ok {
				bad(r, "no test function %s in %s test files", r.test, where)
			}
			if r.tcase != "" && !src.literals[r.tcase] {
				bad(r, "no case named %q in %s test files", r.tcase, where)
			}
		}
		if r.pkg != "" {
			// Only this package's tests have expectations and must have rows.
			r.test = r.pkg + "." + r.test
		}
		listed[r.test] = true
		listed[r.test+"\x00"+r.tcase] = true
		switch {
		case r.code == "per case" || r.reason == "per case":
			if r.code != r.reason || expect[r.test] == nil {
				bad(r, "\"per case\" needs both cells and a table-driven test whose cases this file checks")
			}
			continue
		case r.code == "—" || r.reason == "—":
			if r.code != r.reason {
				bad(r, "— (no call reaches the server) needs both cells")
			}
			continue
		}
		if !validCodes[r.code] {
			bad(r, "%s is not a gRPC code", r.code)
		}
		if !reasons[r.reason] {
			bad(r, "%s is not an audit reason of the interceptor, dpop or challenge packages", r.reason)
		}
		if want, ok := expect[r.test][r.tcase]; ok {
			if atkCodeName(want.code) != r.code || string(want.reason) != r.reason {
				bad(r, "the test asserts %s %s, the row says %s %s", atkCodeName(want.code), want.reason, r.code, r.reason)
			}
		}
	}
	var names []string
	for name, file := range srcs[""].funcs {
		if file == "attacks_test.go" && name != "TestSecurityMatrixMatchesTests" && !listed[name] {
			names = append(names, name)
		}
	}
	for test, cases := range own {
		for _, c := range cases {
			if !listed[test+"\x00"+c] {
				names = append(names, test+" / "+c)
			}
		}
	}
	slices.Sort(names)
	for _, n := range names {
		problems = append(problems, "docs/SECURITY-TESTS.md has no row for "+n)
	}
	return problems
}

func TestSecurityMatrixMatchesTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "SECURITY-TESTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, problems := parseSecurityMatrix(string(doc))
	src := map[string]*matrixSources{}
	for pkg, dir := range matrixPackages {
		if src[pkg], err = matrixTestSources(dir); err != nil {
			t.Fatal(err)
		}
	}
	if src[""], err = matrixTestSources("."); err != nil {
		t.Fatal(err)
	}
	reasons, err := atkKnownReasons(".", filepath.Join("..", "dpop"), filepath.Join("..", "challenge"), filepath.Join("..", "challenge", "factor"), filepath.Join("..", "approval"))
	if err != nil {
		t.Fatal(err)
	}
	expect, own := atkExpectations(), atkOwnCases()
	problems = append(problems, checkSecurityMatrix(rows, src, reasons, expect, own)...)
	for _, p := range problems {
		t.Error(p)
	}
	attacks := 0
	for _, r := range rows {
		if r.id[0] == 'A' {
			attacks++
		}
	}
	if attacks < 40 {
		t.Errorf("the matrix has %d attacks, want at least 40", attacks)
	}
	t.Logf("%d attacks, %d limit rows", attacks, len(rows)-attacks)

	t.Run("drift is caught", func(t *testing.T) {
		// A row naming a test or case that does not exist, a wrong reason,
		// and a test of this file without a row must each be reported.
		const dropped = "TestNonceAttacks"
		drifted := slices.DeleteFunc(slices.Clone(rows), func(r matrixRow) bool { return r.test == dropped })
		drifted = append(drifted,
			matrixRow{id: "X", test: "TestNoSuchAttack", code: "UNAUTHENTICATED", reason: "TOKEN_MISSING"},
			matrixRow{id: "X", test: "TestTokenAttacks", tcase: "no such" + " case", code: "UNAUTHENTICATED", reason: "TOKEN_MISSING"},
			matrixRow{id: "X", test: "TestTokenAttacks", tcase: "jku header", code: "UNAUTHENTICATED", reason: "TOKEN_EXPIRED"},
			matrixRow{id: "X", pkg: "gateway", test: "TestNoSuchGatewayTest", code: "UNAUTHENTICATED", reason: "TOKEN_REVOKED"},
			matrixRow{id: "X", pkg: "gateway", test: "TestReplicasEnforceRevocations", tcase: "no such" + " replica", code: "UNAUTHENTICATED", reason: "TOKEN_REVOKED"},
			matrixRow{id: "X", pkg: "nowhere", test: "TestTokenAttacks", code: "—", reason: "—"},
		)
		got := strings.Join(checkSecurityMatrix(drifted, src, reasons, expect, own), "\n")
		for _, want := range []string{"no test function TestNoSuchAttack", `no case named "no such case"`,
			"no test function TestNoSuchGatewayTest in gateway's test files", `no case named "no such replica" in gateway's test files`,
			"nowhere is not a package whose tests the matrix may name",
			"the test asserts UNAUTHENTICATED TOKEN_BAD_HEADER, the row says UNAUTHENTICATED TOKEN_EXPIRED",
			"has no row for " + dropped + "\n", "has no row for " + dropped + " / stale nonce"} {
			if !strings.Contains(got+"\n", want) {
				t.Errorf("the check missed %q; it reported:\n%s", want, got)
			}
		}
	})
}
