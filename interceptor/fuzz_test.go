package interceptor_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Rewrite the committed seed corpora of this package's fuzz targets:
//
//	go test ./interceptor/ -run '^Fuzz' -interceptor.writecorpus
var writeFuzzCorpus = flag.Bool("interceptor.writecorpus", false, "rewrite the testdata/fuzz seed corpora of this package")

// fuzzSeed is f.Add that, with -interceptor.writecorpus, also writes the
// seed to testdata/fuzz/<target>/<name>.
func fuzzSeed(f *testing.F, name string, args ...any) {
	f.Helper()
	f.Add(args...)
	if !*writeFuzzCorpus {
		return
	}
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b.WriteString("string(" + strconv.Quote(v) + ")\n")
		case bool:
			b.WriteString("bool(" + strconv.FormatBool(v) + ")\n")
		case int64:
			b.WriteString("int64(" + strconv.FormatInt(v, 10) + ")\n")
		case uint8:
			b.WriteString("byte(" + strconv.QuoteRuneToASCII(rune(v)) + ")\n")
		default:
			f.Fatalf("fuzzSeed: unsupported %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", f.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		f.Fatal(err)
	}
}

// The fuzz targets run in several worker processes, each running the setup
// again: keys and clocks are fixed so that every process mints the same
// tokens (Ed25519 signatures are deterministic) and a seed means the same
// thing everywhere.

var fuzzNow = time.Unix(1_800_000_000, 0)

func fuzzKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("stepup interceptor fuzz " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fuzzIssuer signs RFC 9068 access tokens with a fixed Ed25519 key.
type fuzzIssuer struct {
	key  ed25519.PrivateKey
	jwks []byte // the JWK Set document of the public key
}

func newFuzzIssuer(tb testing.TB) *fuzzIssuer {
	tb.Helper()
	key := fuzzKey("issuer")
	pub, err := jwk.Import(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "fuzz-issuer")
	_ = pub.Set(jwk.AlgorithmKey, jwa.EdDSA())
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return &fuzzIssuer{key: key, jwks: jwks}
}

func (is *fuzzIssuer) header() map[string]any {
	return map[string]any{"alg": "EdDSA", "kid": "fuzz-issuer", "typ": "at+jwt"}
}

func (is *fuzzIssuer) claims(sub, jkt string) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "sub": sub, "aud": testAudience, "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(time.Hour).Unix(),
		"jti": "fuzz-" + sub, "client_id": "client-1", "scope": "guarded guarded:write",
	}
	if jkt != "" {
		c["cnf"] = map[string]any{"jkt": jkt}
	}
	return c
}

func (is *fuzzIssuer) sign(tb testing.TB, hdr, claims map[string]any) string {
	return atkCompact(atkJSON(tb, hdr), atkJSON(tb, claims), func(in []byte) []byte { return ed25519.Sign(is.key, in) })
}

var fuzzTokenReasons = map[interceptor.Reason]bool{
	interceptor.ReasonTokenMalformed: true, interceptor.ReasonTokenBadAlgorithm: true, interceptor.ReasonTokenBadType: true,
	interceptor.ReasonTokenBadHeader: true, interceptor.ReasonTokenBadSignature: true, interceptor.ReasonTokenExpired: true,
	interceptor.ReasonTokenNotYetValid: true, interceptor.ReasonTokenWrongIssuer: true, interceptor.ReasonTokenWrongAudience: true,
	interceptor.ReasonTokenInvalidClaims: true,
}

// fuzzLenientSegments decodes a compact JWS the permissive way (whitespace,
// padding, either base64 alphabet, any trailing bits): what a lenient
// parser makes of it.
func fuzzLenientSegments(s string) ([3][]byte, bool) {
	var out [3][]byte
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		p = strings.TrimRight(strings.TrimSpace(p), "=")
		p = strings.NewReplacer("+", "-", "/", "_").Replace(p)
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return out, false
		}
		out[i] = b
	}
	return out, true
}

// FuzzVerifyToken feeds arbitrary access tokens to a JWTVerifier holding a
// real issuer key. It must never panic, every refusal must be a
// *TokenError with a token reason, and it must accept only the exact bytes
// of a token the issuer minted.
func FuzzVerifyToken(f *testing.F) {
	is := newFuzzIssuer(f)
	jv, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: testIssuer, Audience: testAudience, JWKS: is.jwks, Clock: func() time.Time { return fuzzNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	minted := map[string][3][]byte{}
	mint := func(name string, hdr, claims map[string]any) {
		tok := is.sign(f, hdr, claims)
		if again := is.sign(f, hdr, claims); again != tok {
			f.Fatal("minting is not deterministic: fuzz workers would disagree on the minted tokens")
		}
		minted[tok], _ = fuzzLenientSegments(tok)
		fuzzSeed(f, name, tok)
	}
	mint("valid-bound", is.header(), is.claims("alice", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"))
	mint("valid-bearer", is.header(), is.claims("bob", ""))
	c := is.claims("carol", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
	c["acr"], c["auth_time"], c["nbf"] = "urn:example:mfa", fuzzNow.Unix()-60, fuzzNow.Unix()-60
	h := is.header()
	h["typ"] = "application/at+jwt"
	mint("valid-acr", h, c)

	refused := func(name string, hdr, claims map[string]any, sign func([]byte) []byte) {
		fuzzSeed(f, name, atkCompact(atkJSON(f, hdr), atkJSON(f, claims), sign))
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(is.key, in) }
	other := fuzzKey("attacker")
	for _, v := range []struct {
		name string
		edit func(h, c map[string]any)
	}{
		{"expired", func(h, c map[string]any) { c["exp"] = fuzzNow.Add(-time.Hour).Unix() }},
		{"not-yet-valid", func(h, c map[string]any) { c["nbf"] = fuzzNow.Add(time.Hour).Unix() }},
		{"wrong-issuer", func(h, c map[string]any) { c["iss"] = "https://evil.example" }},
		{"wrong-audience", func(h, c map[string]any) { c["aud"] = []string{"https://other.example"} }},
		{"typ-jwt", func(h, c map[string]any) { h["typ"] = "JWT" }},
		{"jku", func(h, c map[string]any) { h["jku"] = "https://evil.example/jwks" }},
		{"crit", func(h, c map[string]any) { h["crit"] = []string{"exp"} }},
		{"jkt-number", func(h, c map[string]any) { c["cnf"] = map[string]any{"jkt": 1} }},
		{"no-exp", func(h, c map[string]any) { delete(c, "exp") }},
		{"scp-line-feed", func(h, c map[string]any) { delete(c, "scope"); c["scp"] = []string{"read", "x\nadmin"} }},
		{"scope-no-break-space", func(h, c map[string]any) { c["scope"] = "read x\u00a0admin" }},
		{"auth-time-1e19", func(h, c map[string]any) { c["auth_time"] = 1e19 }},
		{"auth-time-ahead", func(h, c map[string]any) { c["auth_time"] = fuzzNow.Add(time.Hour).Unix() }},
		{"cnf-x5t", func(h, c map[string]any) {
			c["cnf"] = map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
		}},
		{"alg-ps256-on-eddsa-key", func(h, c map[string]any) { h["alg"] = "PS256" }},
	} {
		h, c := is.header(), is.claims("alice", "")
		v.edit(h, c)
		refused(v.name, h, c, edSign)
	}
	refused("attacker-key", is.header(), is.claims("alice", ""), func(in []byte) []byte { return ed25519.Sign(other, in) })
	h = is.header()
	h["alg"] = "none"
	refused("alg-none", h, is.claims("alice", ""), nil)
	h["alg"] = "HS256"
	refused("hs256-public-key", h, is.claims("alice", ""), atkHS256(is.jwks))
	for _, tok := range slices.Sorted(maps.Keys(minted)) {
		if strings.HasSuffix(tok, "A") || strings.HasSuffix(tok, "Q") || strings.HasSuffix(tok, "g") || strings.HasSuffix(tok, "w") {
			// The same signature bits with the unused ones set: finding F1.
			fuzzSeed(f, "non-canonical-spelling", tok[:len(tok)-1]+string(tok[len(tok)-1]+1))
			break
		}
	}
	fuzzSeed(f, "padded-spelling", is.sign(f, is.header(), is.claims("alice", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"))+"==")
	fuzzSeed(f, "garbage", "a.b.c")
	fuzzSeed(f, "empty", "")
	fuzzSeed(f, "rfc9449-opaque", "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")

	f.Fuzz(func(t *testing.T, s string) {
		tok, err := jv.VerifyToken(context.Background(), s)
		if err != nil {
			var te *interceptor.TokenError
			if !errors.As(err, &te) || !fuzzTokenReasons[te.Reason] || tok != nil {
				t.Fatalf("refusal %T %v (token %v), want a *TokenError with a token reason", err, err, tok)
			}
			return
		}
		if tok == nil {
			t.Fatal("accepted without a token")
		}
		if _, ok := minted[s]; ok {
			return
		}
		if segs, ok := fuzzLenientSegments(s); ok {
			for _, m := range minted {
				if bytes.Equal(segs[0], m[0]) && bytes.Equal(segs[1], m[1]) && bytes.Equal(segs[2], m[2]) {
					t.Fatal("another spelling of a minted token is accepted (finding F1)")
				}
			}
		}
		t.Fatalf("accepted a token the issuer never minted: %q", s)
	})
}

// fuzzGuard is a real Guard with fixed keys and clock, called directly
// through its interceptors (as grpc-go would, without the network).
type fuzzGuard struct {
	guard   *interceptor.Guard
	svc     *challenge.Service
	unary   grpc.UnaryServerInterceptor
	stream  grpc.StreamServerInterceptor
	signer  *dpop.Signer // alice's DPoP key
	token   string       // alice's token, bound to signer
	mu      sync.Mutex
	last    *interceptor.Event
	reasons map[string]bool
}

func (g *fuzzGuard) Audit(_ context.Context, e *interceptor.Event) {
	g.mu.Lock()
	ev := *e
	g.last = &ev
	g.mu.Unlock()
}

func newFuzzGuard(tb testing.TB) *fuzzGuard {
	tb.Helper()
	now := func() time.Time { return fuzzNow }
	is := newFuzzIssuer(tb)
	jv, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKS: is.jwks, Clock: now})
	if err != nil {
		tb.Fatal(err)
	}
	// No replay store: the harness reuses one valid proof per method, so
	// that every run of an input takes the same path (replays are tested
	// end to end in attacks_test.go and the load test). No seed holds a
	// valid proof for a method the fuzzer may call without step-up.
	accept := dpop.ReplayStoreFunc(func(context.Context, string, time.Time, time.Time) error { return nil })
	dv, err := dpop.NewVerifier(dpop.WithClock(now), dpop.WithAuthorities("api.example"), dpop.WithReplayStore(accept))
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := challenge.NewKeySet(atkKnownKey)
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := challenge.NewService(challenge.WithKeys(ks), challenge.WithClock(now),
		challenge.WithAttemptLimits(3, 1<<30, time.Hour),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
			if sub == "alice" || sub == "bob" {
				return testTOTP, nil
			}
			return "", challenge.ErrUnknownSubject
		}), challenge.TOTPOptions{}))
	if err != nil {
		tb.Fatal(err)
	}
	g := &fuzzGuard{svc: svc}
	g.reasons, err = atkKnownReasons(".", filepath.Join("..", "dpop"), filepath.Join("..", "challenge"), filepath.Join("..", "challenge", "factor"))
	if err != nil {
		tb.Fatal(err)
	}
	g.guard, err = interceptor.New(interceptor.WithTokenVerifier(jv), interceptor.WithDPoP(dv), interceptor.WithStepUp(svc),
		interceptor.WithAuditSink(g), interceptor.WithClock(now))
	if err != nil {
		tb.Fatal(err)
	}
	g.unary, g.stream = g.guard.UnaryServerInterceptor(), g.guard.StreamServerInterceptor()
	if g.signer, err = dpop.NewSigner(fuzzKey("alice-dpop"), dpop.WithClock(now)); err != nil {
		tb.Fatal(err)
	}
	g.token = is.sign(tb, is.header(), is.claims("alice", g.signer.Thumbprint()))
	return g
}

// fuzzMethods are the guarded methods the fuzzer calls; the first three
// require step-up.
var fuzzMethods = []struct {
	method string
	stream bool
}{
	{mGranted, false}, {mSensitive, false}, {mWatch, true}, {mPlain, false}, {mUpload, true}, {mChat, true},
}

type fuzzTransport struct{ method string }

func (s fuzzTransport) Method() string                  { return s.method }
func (fuzzTransport) SetHeader(metadata.MD) error       { return nil }
func (fuzzTransport) SendHeader(metadata.MD) error      { return nil }
func (fuzzTransport) SetTrailer(metadata.MD) error      { return nil }
func (s fuzzServerStream) SetHeader(metadata.MD) error  { return nil }
func (s fuzzServerStream) SendHeader(metadata.MD) error { return nil }
func (s fuzzServerStream) SetTrailer(metadata.MD)       {}
func (s fuzzServerStream) Context() context.Context     { return s.ctx }
func (s fuzzServerStream) SendMsg(any) error            { return nil }
func (s fuzzServerStream) RecvMsg(any) error            { return io.EOF }

type fuzzServerStream struct{ ctx context.Context }

// call runs one call of method through the Guard with the given metadata
// values ("" leaves a header out) and reports whether the handler ran.
func (g *fuzzGuard) call(method string, stream bool, authz, proof, answer, grant string) (bool, error) {
	var req any = &policytestv1.PlainRequest{Text: "hi"}
	if method == mSensitive {
		req = transferRequest(12_000)
	}
	return g.callWith(method, stream, req, authz, proof, answer, grant)
}

// callWith is call with the unary request message req.
func (g *fuzzGuard) callWith(method string, stream bool, req any, authz, proof, answer, grant string) (bool, error) {
	md := metadata.Pairs(":authority", "api.example")
	for _, kv := range [][2]string{{"authorization", authz}, {"dpop", proof}, {"stepup-answer", answer}, {"stepup-grant", grant}} {
		if kv[1] != "" {
			md.Append(kv[0], kv[1])
		}
	}
	ctx := metadata.NewIncomingContext(context.Background(), md)
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	called := false
	if stream {
		err := g.stream(nil, fuzzServerStream{ctx}, &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true},
			func(any, grpc.ServerStream) error { called = true; return nil })
		return called, err
	}
	ctx = grpc.NewContextWithServerTransportStream(ctx, fuzzTransport{method})
	_, err := g.unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method},
		func(context.Context, any) (any, error) { called = true; return nil, nil })
	return called, err
}

func (g *fuzzGuard) proof(tb testing.TB, method string) string {
	p, err := g.signer.Proof("POST", "https://api.example"+method, g.token)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// FuzzGuardMetadata sends arbitrary authorization, dpop, stepup-answer and
// stepup-grant values through a real Guard, unary and stream. With fresh
// set, the Guard gets alice's valid token and a fresh proof instead of the
// fuzzed ones, so that the fuzzed answer and grant reach the step-up layer.
// It must never panic, never allow a call (no seed is a valid credential
// set for any target, and none can be made without the keys), and every
// refusal must carry a known audit reason.
func FuzzGuardMetadata(f *testing.F) {
	g := newFuzzGuard(f)
	is := newFuzzIssuer(f)
	bound := "DPoP " + g.token
	freshProofs := map[string]string{}
	for _, m := range fuzzMethods[:3] {
		freshProofs[m.method] = g.proof(f, m.method)
	}
	// Seeds whose token and proof are fuzzed (fresh=false). Their proofs are
	// for a method the fuzzer never calls, or otherwise invalid.
	staleClaims := atkProofClaimsFor(g.token, mPlain, fuzzNow.Add(-2*time.Minute))
	fuzzSeed(f, "no-credentials", uint8(3), false, "", "", "", "")
	fuzzSeed(f, "bound-token-no-proof", uint8(3), false, bound, "", "", "")
	fuzzSeed(f, "bound-token-as-bearer", uint8(3), false, "Bearer "+g.token, "", "", "")
	fuzzSeed(f, "unbound-token", uint8(3), false, "DPoP "+is.sign(f, is.header(), is.claims("bob", "")), g.proof(f, mReusable), "", "")
	fuzzSeed(f, "proof-other-method", uint8(3), false, bound, g.signJWS(f, atkProofClaimsFor(g.token, mReusable, fuzzNow)), "", "")
	fuzzSeed(f, "proof-stale", uint8(3), false, bound, g.signJWS(f, staleClaims), "", "")
	fuzzSeed(f, "proof-other-token", uint8(4), false, bound, g.signJWS(f, atkProofClaimsFor("other", mUpload, fuzzNow)), "", "")
	fuzzSeed(f, "rfc9449-vector", uint8(3), false, "DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
		"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA",
		"", "")
	fuzzSeed(f, "garbage", uint8(2), false, "Bearer a.b.c", "a.b.c", "a.b.c", "a.b.c")
	// Seeds with a fresh valid token and proof: answers and grants that can
	// never satisfy the step-up (another subject, a wrong code, another key).
	chAlice := g.challenge(f, mGranted, g.signer, g.token)
	chBob := g.challenge(f, mGranted, g.signer, is.sign(f, is.header(), is.claims("bob", g.signer.Thumbprint())))
	wrong := atkAnswerFor(f, g.signer, chAlice, atkWrongCodeAt(fuzzNow))
	fuzzSeed(f, "answer-wrong-code", uint8(0), true, "", "", wrong, "")
	fuzzSeed(f, "answer-bob-challenge", uint8(0), true, "", "", atkAnswerFor(f, g.signer, chBob, atkCode(f, fuzzNow)), "")
	// A right code for a challenge of a method the fuzzer never calls (the
	// fuzzer may change the target of any seed).
	out, err := g.svc.Check(context.Background(), challenge.Call{Subject: "alice", Thumbprint: g.signer.Thumbprint(),
		Method: mReusable, Requirement: &challenge.Requirement{MaxAge: 300 * time.Second}})
	if err != nil || out.Challenge == nil {
		f.Fatalf("challenge for %s: %v", mReusable, err)
	}
	fuzzSeed(f, "answer-other-method", uint8(2), true, "", "", atkAnswerFor(f, g.signer, out.Challenge, atkCode(f, fuzzNow)), "")
	mallory, err := dpop.NewSigner(fuzzKey("mallory-dpop"), dpop.WithClock(func() time.Time { return fuzzNow }))
	if err != nil {
		f.Fatal(err)
	}
	fuzzSeed(f, "answer-other-key", uint8(0), true, "", "", atkAnswerFor(f, mallory, chAlice, atkCode(f, fuzzNow)), "")
	fuzzSeed(f, "grant-bob", uint8(0), true, "", "", "", g.grantFor(f, "bob", g.signer.Thumbprint()))
	fuzzSeed(f, "grant-other-key", uint8(2), true, "", "", "", g.grantFor(f, "alice", mallory.Thumbprint()))
	fuzzSeed(f, "grant-and-answer", uint8(1), true, "", "", wrong, g.grantFor(f, "alice", mallory.Thumbprint()))

	f.Fuzz(func(t *testing.T, target uint8, fresh bool, authz, proof, answer, grant string) {
		m := fuzzMethods[int(target)%len(fuzzMethods)]
		if fresh {
			m = fuzzMethods[int(target)%3] // step-up methods only: the credentials are valid
			authz, proof = bound, freshProofs[m.method]
		}
		called, err := g.call(m.method, m.stream, authz, proof, answer, grant)
		if called || err == nil {
			t.Fatalf("%s allowed (handler ran %v, err %v); audit %+v", m.method, called, err, g.last)
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() == codes.OK || st.Code() == codes.Unknown {
			t.Fatalf("refusal %v is not a Stepup status", err)
		}
		g.mu.Lock()
		ev := g.last
		g.mu.Unlock()
		switch {
		case ev == nil:
			t.Fatal("no audit event")
		case ev.Decision == interceptor.DecisionAllow || ev.Decision == interceptor.DecisionStepUpPassed || ev.Decision == interceptor.DecisionShadowDeny:
			t.Fatalf("refused call audited as %s", ev.Decision)
		case !g.reasons[string(ev.Reason)]:
			t.Fatalf("audit reason %q is not a known reason", ev.Reason)
		case ev.Code != st.Code():
			t.Fatalf("audit code %s, wire code %s", ev.Code, st.Code())
		}
		t.Logf("%s: %s %s", m.method, ev.Code, ev.Reason)
	})
}

// atkProofClaimsFor are proof claims for token on method at iat, with a
// fixed jti so that seeds are reproducible.
func atkProofClaimsFor(token, method string, iat time.Time) map[string]any {
	return map[string]any{"jti": "fuzz-seed-jti-000001", "htm": "POST", "htu": "https://api.example" + method,
		"iat": iat.Unix(), "ath": dpop.ATH(token)}
}

// signJWS signs proof claims with alice's DPoP key.
func (g *fuzzGuard) signJWS(tb testing.TB, claims map[string]any) string {
	hdr := map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": json.RawMessage(g.signer.PublicJWK())}
	key := fuzzKey("alice-dpop")
	return atkCompact(atkJSON(tb, hdr), atkJSON(tb, claims), func(in []byte) []byte { return ed25519.Sign(key, in) })
}

// challenge calls method with token and a fresh proof by signer, and
// returns the challenge it is refused with.
func (g *fuzzGuard) challenge(tb testing.TB, method string, signer *dpop.Signer, token string) *stepupv1.StepUpChallenge {
	tb.Helper()
	proof, err := signer.Proof("POST", "https://api.example"+method, token)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = g.call(method, false, "DPoP "+token, proof, "", "")
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		tb.Fatalf("no challenge: %v", err)
	}
	return ch
}

// grantFor signs a grant for sub and a DPoP key thumbprint with the
// service's key, as the service would (docs/STEPUP.md §3.4).
func (g *fuzzGuard) grantFor(tb testing.TB, sub, jkt string) string {
	m := fuzzMACKey(challenge.GrantType)
	hdr := []byte(`{"alg":"HS256","kid":"` + atkKnownKey.ID + `","typ":"` + challenge.GrantType + `"}`)
	body := atkJSON(tb, map[string]any{"jti": "fuzz-grant-" + sub, "sub": sub, "jkt": jkt, "fac": "totp",
		"auth_time": fuzzNow.Unix(), "iat": fuzzNow.Unix(), "exp": fuzzNow.Add(5 * time.Minute).Unix()})
	return atkCompact(hdr, body, atkHS256(m))
}

func fuzzMACKey(typ string) []byte {
	return atkHS256(atkKnownKey.Secret)([]byte(typ))
}

func atkAnswerFor(tb testing.TB, signer *dpop.Signer, ch *stepupv1.StepUpChallenge, code string) string {
	tb.Helper()
	a, err := challenge.Answer(signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// atkWrongCodeAt is a 6-digit code that no accepted time step around at
// matches.
func atkWrongCodeAt(at time.Time) string {
	valid := map[string]bool{}
	for d := -2; d <= 2; d++ {
		c, _ := challenge.TOTPCode(testTOTP, at.Add(time.Duration(d)*30*time.Second))
		valid[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i*7919%1_000_000); !valid[c] {
			return c
		}
	}
}

// FuzzChallengeSummary sends arbitrary transfer requests to a step-up
// method through a real Guard: the request is the client's, the summary of
// the challenge is what a person approves. It must never panic; every
// summary value and the summary text must be valid UTF-8 without control,
// format or line-separator characters, values at most 128 characters, and
// only fields marked for display shown.
func FuzzChallengeSummary(f *testing.F) {
	g := newFuzzGuard(f)
	bound, proof := "DPoP "+g.token, g.proof(f, mSensitive)
	fuzzSeed(f, "transfer", int64(12_000), "EUR", "DE89370400440532013000", "rent")
	fuzzSeed(f, "bidi-override", int64(100), "EUR", "DE89\u202e0003102440407398ED", "")
	fuzzSeed(f, "controls", int64(-1), "E\x00U\nR", "DE\r\n89\t", "\x1b[2J")
	fuzzSeed(f, "invalid-utf8", int64(1<<62), "\xff\xfe", "\xc3\x28", "")
	fuzzSeed(f, "imitated-item", int64(99_999_900), "EUR", "DE89370400440532013000, amount 1.00 EUR", "")
	fuzzSeed(f, "long", int64(7), "JPY", strings.Repeat("long\u00e9", 100), strings.Repeat("n", 1000))
	fuzzSeed(f, "currency-digits", int64(123_456), "BHD", "", "")
	f.Fuzz(func(t *testing.T, amount int64, currency, to, note string) {
		req := &policytestv1.SensitiveRequest{AmountMinor: amount, Currency: currency, ToIban: to, Note: note}
		if _, err := proto.Marshal(req); err != nil {
			return // invalid UTF-8 in a string: gRPC refuses such a message before any interceptor
		}
		called, err := g.callWith(mSensitive, false, req, bound, proof, "", "")
		if called || err == nil {
			t.Fatal("allowed without step-up")
		}
		ch := interceptor.ChallengeFromError(err)
		if ch == nil {
			if g.last != nil && g.last.Reason == interceptor.ReasonStepUpLocked {
				return
			}
			t.Fatalf("no challenge: %v (audit %+v)", err, g.last)
		}
		check := func(what, s string, max int) {
			if !utf8.ValidString(s) {
				t.Fatalf("%s %q is not UTF-8", what, s)
			}
			if n := utf8.RuneCountInString(s); max > 0 && n > max {
				t.Fatalf("%s %q has %d characters, over %d", what, s, n, max)
			}
			for _, r := range s {
				if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) {
					t.Fatalf("%s %q holds %U", what, s, r)
				}
			}
		}
		check("summary text", ch.GetSummaryText(), 0)
		for _, it := range ch.GetSummary() {
			if it.GetField() != "amount_minor" && it.GetField() != "to_iban" {
				t.Fatalf("field %q is not marked for display", it.GetField())
			}
			check("label", it.GetLabel(), 128)
			check("value", it.GetValue(), 128)
		}
		if n := len(ch.GetSummary()); n != 2 {
			t.Fatalf("%d summary items, want amount and to", n)
		}
		if got := atkSummaryParts(ch.GetSummaryText()); got != len(ch.GetSummary()) {
			t.Fatalf("a value reads as another item of the summary text (finding F4): %q", ch.GetSummaryText())
		}
	})
}
