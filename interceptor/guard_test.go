package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
)

const (
	mPlain     = "/policytest.v1.GuardedService/Plain"
	mSensitive = "/policytest.v1.GuardedService/Sensitive"
	mReusable  = "/policytest.v1.GuardedService/Reusable"
	mGranted   = "/policytest.v1.GuardedService/Granted"
	mWatch     = "/policytest.v1.GuardedService/Watch"
	mUpload    = "/policytest.v1.GuardedService/Upload"
	mChat      = "/policytest.v1.GuardedService/Chat"
	mForgotten = "/policytest.v1.UnguardedService/Forgotten"
)

// refusal is what a refused call must look like, on the wire and in the
// audit log.
type refusal struct {
	code   codes.Code
	wire   string
	reason interceptor.Reason
}

func assertRefused(t *testing.T, e *env, err error, want refusal) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != want.code {
		t.Fatalf("error = %v, want code %s", err, want.code)
	}
	if got := interceptor.ReasonFromError(err); got != want.wire {
		t.Errorf("wire reason = %q, want %q", got, want.wire)
	}
	assertHint(t, err, want.reason)
	ev := e.audit.last(t)
	if ev.Reason != want.reason || ev.Code != want.code {
		t.Errorf("audit reason = %s (%s), want %s (%s); detail %q", ev.Reason, ev.Code, want.reason, want.code, ev.Detail)
	}
}

// kind is one of the four RPC kinds, driven with the same credentials.
type kind struct {
	name   string
	method string
	call   func(ctx context.Context, c policytestv1.GuardedServiceClient) (string, error)
}

var kinds = []kind{
	{"unary", mPlain, func(ctx context.Context, c policytestv1.GuardedServiceClient) (string, error) {
		r, err := c.Plain(ctx, &policytestv1.PlainRequest{Text: "hi"})
		return r.GetText(), err
	}},
	{"client-stream", mUpload, func(ctx context.Context, c policytestv1.GuardedServiceClient) (string, error) {
		s, err := c.Upload(ctx)
		if err != nil {
			return "", err
		}
		for i := 0; i < 3; i++ {
			if err := s.Send(&policytestv1.PlainRequest{Text: "part"}); err != nil && err != io.EOF {
				return "", err
			}
		}
		r, err := s.CloseAndRecv()
		return r.GetText(), err
	}},
	{"bidi-stream", mChat, func(ctx context.Context, c policytestv1.GuardedServiceClient) (string, error) {
		s, err := c.Chat(ctx)
		if err != nil {
			return "", err
		}
		if err := s.Send(&policytestv1.PlainRequest{Text: "ping"}); err != nil && err != io.EOF {
			return "", err
		}
		_ = s.CloseSend()
		r, err := s.Recv()
		return r.GetText(), err
	}},
}

func TestAllowedCallCarriesIdentity(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			text, err := k.call(context.Background(), e.client(e.boundToken(tokenOpts{})))
			if err != nil {
				t.Fatal(err)
			}
			if want := "alice " + e.signer.Thumbprint(); !strings.HasPrefix(text, want) {
				t.Fatalf("handler saw %q, want %q", text, want)
			}
			ev := e.audit.last(t)
			want := interceptor.Event{
				Decision: interceptor.DecisionAllow, Reason: interceptor.ReasonAllowed, Code: codes.OK,
				Method: k.method, Stream: k.name != "unary", Subject: "alice", ClientID: "client-1",
				Thumbprint: e.signer.Thumbprint(),
			}
			if ev.Decision != want.Decision || ev.Reason != want.Reason || ev.Code != want.Code || ev.Method != want.Method ||
				ev.Stream != want.Stream || ev.Subject != want.Subject || ev.ClientID != want.ClientID ||
				ev.Thumbprint != want.Thumbprint || !strings.HasPrefix(ev.TokenID, "tok-alice-") || ev.Peer == "" ||
				ev.Time.IsZero() || ev.Factor != "" || ev.Via != "" || ev.Detail != "" {
				t.Fatalf("audit event = %+v\nwant %+v", ev, want)
			}
			if n := len(e.audit.all()); n != 1 {
				t.Fatalf("%d audit events for one call, want 1", n)
			}
		})
	}
}

// forgery builds the credentials of one attack for method.
type forgery struct {
	name  string
	creds func(e *env, method string) []string
	want  refusal
}

func otherKeySigner(t testing.TB, now func() time.Time) *dpop.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedToken builds a token with alg none, or HS256 keyed with the
// issuer's public key (the classic key confusion).
func confusedToken(t testing.TB, e *env, alg string) string {
	t.Helper()
	now := e.clock.Now()
	claims := map[string]any{
		"iss": testIssuer, "sub": "alice", "aud": testAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"scope": "guarded", "cnf": map[string]any{"jkt": e.signer.Thumbprint()},
	}
	hdr, _ := json.Marshal(map[string]any{"alg": alg, "typ": "at+jwt", "kid": "issuer-key-1"})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	if alg == "none" {
		return input + "."
	}
	// HMAC keyed with the issuer's public key, as published in its JWKS.
	pub, _ := e.issuer.PublicSet().Key(0)
	raw, _ := json.Marshal(pub)
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

var forgeries = []forgery{
	{"no credentials", func(e *env, m string) []string { return nil },
		refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenMissing}},
	{"basic scheme", func(e *env, m string) []string { return []string{"authorization", "Basic YWxpY2U6cHc="} },
		refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenScheme}},
	{"token with a character outside token68", func(e *env, m string) []string {
		// A real bound token with a printable character token68 does not
		// allow (gRPC refuses non-printable header bytes before any
		// server sees them): the syntax check refuses it before any cache
		// or verifier sees it.
		tok := e.boundToken(tokenOpts{})
		bad := tok[:10] + "*" + tok[10:]
		return []string{"authorization", "DPoP " + bad, "dpop", e.proof(m, bad)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenScheme}},
	{"token with characters after its padding", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{}) + "==a"
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenScheme}},
	{"not a JWT", func(e *env, m string) []string {
		return []string{"authorization", "DPoP abc", "dpop", e.proof(m, "abc")}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenMalformed}},
	{"token from another issuer key", func(e *env, m string) []string {
		tok := newIssuer(e.t).mint(e.t, e.clock.Now(), tokenOpts{JKT: e.signer.Thumbprint(), Scope: "guarded"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenBadSignature}},
	{"expired token", func(e *env, m string) []string {
		now := e.clock.Now()
		tok := e.boundToken(tokenOpts{IssuedAt: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Hour)})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenExpired}},
	{"token not yet valid", func(e *env, m string) []string {
		now := e.clock.Now()
		tok := e.boundToken(tokenOpts{IssuedAt: now.Add(time.Hour), Expiry: now.Add(2 * time.Hour)})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenNotYetValid}},
	{"wrong issuer", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{Issuer: "https://evil.example"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenWrongIssuer}},
	{"wrong audience", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{Audience: "https://other.example"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenWrongAudience}},
	{"ID token type", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{Type: "JWT"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenBadType}},
	{"alg none", func(e *env, m string) []string {
		tok := confusedToken(e.t, e, "none")
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenBadAlgorithm}},
	{"HS256 keyed with the public key", func(e *env, m string) []string {
		tok := confusedToken(e.t, e, "HS256")
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenBadAlgorithm}},
	{"bearer token on a DPoP method", func(e *env, m string) []string {
		tok := e.issuer.mint(e.t, e.clock.Now(), tokenOpts{Scope: "guarded"})
		return []string{"authorization", "Bearer " + tok}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonDPoPRequired}},
	{"bound token sent as bearer", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		return []string{"authorization", "Bearer " + tok}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonBoundTokenAsBearer}},
	{"unbound token with the DPoP scheme", func(e *env, m string) []string {
		tok := e.issuer.mint(e.t, e.clock.Now(), tokenOpts{Scope: "guarded"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenNotBound}},
	{"stolen token without a proof", func(e *env, m string) []string {
		return []string{"authorization", "DPoP " + e.boundToken(tokenOpts{})}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.ReasonProofMissing}},
	{"stolen token with the thief's own key", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		p, _ := otherKeySigner(e.t, e.clock.Now).Proof("POST", "https://api.example"+m, tok)
		return []string{"authorization", "DPoP " + tok, "dpop", p}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonKeyMismatch)}},
	{"proof for another method", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof("/policytest.v1.GuardedService/Other", tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonBadURI)}},
	{"proof for another authority", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		p, _ := e.signer.Proof("POST", "https://evil.example"+m, tok)
		return []string{"authorization", "DPoP " + tok, "dpop", p}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonBadURI)}},
	{"proof for another token", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, e.boundToken(tokenOpts{Subject: "bob"}))}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonBadATH)}},
	{"proof with GET", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		p, _ := e.signer.Proof("GET", "https://api.example"+m, tok)
		return []string{"authorization", "DPoP " + tok, "dpop", p}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonBadMethod)}},
	{"two authorization values", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		return []string{"authorization", "DPoP " + tok, "authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidRequest, interceptor.ReasonMetadataDuplicate}},
	{"two proofs", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok), "dpop", e.proof(m, tok)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidRequest, interceptor.ReasonMetadataDuplicate}},
	{"oversized authorization", func(e *env, m string) []string {
		return []string{"authorization", "DPoP " + strings.Repeat("a", interceptor.MaxAuthorizationSize)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidRequest, interceptor.ReasonMetadataTooLarge}},
	{"oversized proof", func(e *env, m string) []string {
		return []string{"authorization", "DPoP " + e.boundToken(tokenOpts{}), "dpop", strings.Repeat("a", interceptor.MaxProofSize+1)}
	}, refusal{codes.Unauthenticated, interceptor.WireInvalidRequest, interceptor.ReasonMetadataTooLarge}},
	{"missing scope", func(e *env, m string) []string {
		tok := e.boundToken(tokenOpts{Scope: "other"})
		return []string{"authorization", "DPoP " + tok, "dpop", e.proof(m, tok)}
	}, refusal{codes.PermissionDenied, interceptor.WireInsufficientScope, interceptor.ReasonInsufficientScope}},
}

func TestForgeriesRefused(t *testing.T) {
	for _, k := range kinds {
		for _, f := range forgeries {
			t.Run(k.name+"/"+f.name, func(t *testing.T) {
				e := newEnv(t, envOpts{})
				ctx := withCreds(context.Background(), f.creds(e, k.method)...)
				_, err := k.call(ctx, e.raw())
				assertRefused(t, e, err, f.want)
				ev := e.audit.last(t)
				if ev.Decision != interceptor.DecisionDeny || ev.Method != k.method || ev.Stream != (k.name != "unary") {
					t.Errorf("audit event = %+v", ev)
				}
				if n := e.server.handled(strings.TrimPrefix(k.method, "/policytest.v1.GuardedService/")); n != 0 {
					t.Fatalf("the handler ran %d times for a refused call", n)
				}
			})
		}
	}
}

func TestReplayedProofRefused(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			tok := e.boundToken(tokenOpts{})
			ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(k.method, tok))
			if _, err := k.call(ctx, e.raw()); err != nil {
				t.Fatalf("first use: %v", err)
			}
			_, err := k.call(ctx, e.raw())
			assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonReplayed)})
		})
	}
}

func TestWWWAuthenticate(t *testing.T) {
	e := newEnv(t, envOpts{})
	var trailer metadata.MD
	_, err := e.raw().Plain(context.Background(), &policytestv1.PlainRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	got := trailer.Get("www-authenticate")
	if len(got) != 1 || !strings.HasPrefix(got[0], "DPoP algs=\"") || strings.Contains(got[0], "error=") {
		t.Fatalf("www-authenticate without credentials = %q, want a bare DPoP challenge (RFC 6750 §3.1)", got)
	}
	tok := e.boundToken(tokenOpts{})
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok))
	_, err = e.raw().Plain(ctx, &policytestv1.PlainRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	if got := trailer.Get("www-authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], `DPoP error="invalid_dpop_proof", algs="`) {
		t.Fatalf("www-authenticate = %q", got)
	}
}

func TestNonceRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newEnv(t, envOpts{nonces: true})
			c := e.client(e.boundToken(tokenOpts{}))
			if _, err := k.call(context.Background(), c); err != nil {
				t.Fatalf("call with nonce retry: %v", err)
			}
			evs := e.audit.all()
			if len(evs) != 2 || evs[0].Reason != interceptor.Reason(dpop.ReasonNonceRequired) || evs[1].Decision != interceptor.DecisionAllow {
				t.Fatalf("audit = %+v, want a nonce refusal then an allow", evs)
			}
			// The nonce is remembered: the next call needs no retry.
			e.audit.reset()
			if _, err := k.call(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if evs := e.audit.all(); len(evs) != 1 {
				t.Fatalf("second call took %d attempts", len(evs))
			}
			// Two windows later the nonce is stale: refused, then retried.
			e.clock.Advance(3 * time.Minute)
			e.audit.reset()
			if _, err := k.call(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if evs := e.audit.all(); len(evs) != 2 || evs[0].Reason != interceptor.Reason(dpop.ReasonNonceInvalid) {
				t.Fatalf("audit after expiry = %+v", evs)
			}
		})
	}
}

func TestNonceRefusalCarriesNonce(t *testing.T) {
	e := newEnv(t, envOpts{nonces: true})
	tok := e.boundToken(tokenOpts{})
	var trailer metadata.MD
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mPlain, tok))
	_, err := e.raw().Plain(ctx, &policytestv1.PlainRequest{}, grpc.Trailer(&trailer))
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireUseDPoPNonce, interceptor.Reason(dpop.ReasonNonceRequired)})
	if got := trailer.Get("dpop-nonce"); len(got) != 1 || got[0] != e.nonces.Current() {
		t.Fatalf("dpop-nonce = %q, want the current nonce", got)
	}
	if got := trailer.Get("www-authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("www-authenticate = %q", got)
	}
}

func TestShadowModeProceedsAndAudits(t *testing.T) {
	e := newEnv(t, envOpts{})
	// Reusable is in shadow mode and requires step-up: without an answer the
	// call proceeds, and the audit says it would have been refused.
	tok := e.boundToken(tokenOpts{})
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mReusable, tok))
	r, err := e.raw().Reusable(ctx, &policytestv1.PlainRequest{})
	if err != nil {
		t.Fatalf("shadow mode refused the call: %v", err)
	}
	if !strings.HasPrefix(r.GetText(), "alice ") {
		t.Fatalf("handler saw %q", r.GetText())
	}
	ev := e.audit.last(t)
	if ev.Decision != interceptor.DecisionShadowDeny || ev.Reason != interceptor.ReasonStepUpRequired || ev.Code != codes.OK || ev.Subject != "alice" {
		t.Fatalf("audit = %+v", ev)
	}
	// Without any credentials, too: the decision is audited, not enforced.
	if _, err := e.raw().Reusable(context.Background(), &policytestv1.PlainRequest{}); err != nil {
		t.Fatal(err)
	}
	if ev := e.audit.last(t); ev.Decision != interceptor.DecisionShadowDeny || ev.Reason != interceptor.ReasonTokenMissing {
		t.Fatalf("audit = %+v", ev)
	}
}

func TestUnannotatedMethod(t *testing.T) {
	t.Run("fail closed", func(t *testing.T) {
		e := newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithRequirePolicy()}})
		tok := e.boundToken(tokenOpts{})
		ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mForgotten, tok))
		_, err := policytestv1.NewUnguardedServiceClient(e.conn()).Forgotten(ctx, &policytestv1.PlainRequest{})
		assertRefused(t, e, err, refusal{codes.PermissionDenied, interceptor.WirePolicyMissing, interceptor.ReasonPolicyMissing})
	})
	t.Run("baseline", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		_, err := policytestv1.NewUnguardedServiceClient(e.conn()).Forgotten(context.Background(), &policytestv1.PlainRequest{})
		assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenMissing})
		tok := e.boundToken(tokenOpts{})
		ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mForgotten, tok))
		_, err = policytestv1.NewUnguardedServiceClient(e.conn()).Forgotten(ctx, &policytestv1.PlainRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("a DPoP call to an unannotated method = %v, want it to reach the handler", err)
		}
	})
}

func TestMaxTokenAge(t *testing.T) {
	e := newEnv(t, envOpts{})
	// Plain allows tokens up to an hour old (+30 s leeway); Sensitive 5 minutes.
	tok := e.boundToken(tokenOpts{Expiry: e.clock.Now().Add(24 * time.Hour)})
	e.clock.Advance(10 * time.Minute)
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok))
	_, err := e.raw().Sensitive(ctx, &policytestv1.SensitiveRequest{})
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenTooOld})
	ctx = withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mPlain, tok))
	if _, err := e.raw().Plain(ctx, &policytestv1.PlainRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok := e.boundToken(tokenOpts{Expiry: e.clock.Now().Add(10 * time.Minute)})
	c := e.client(tok)
	if _, err := c.Plain(context.Background(), &policytestv1.PlainRequest{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * time.Minute)
	_, err := c.Plain(context.Background(), &policytestv1.PlainRequest{})
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInvalidToken, interceptor.ReasonTokenExpired})
}

// TestClientRefusesPlaintextWithoutOptIn: over a plaintext connection a
// client without WithInsecureLocalTransport never asks for its token nor
// sends anything, and its error names the option (and TLS), not
// WithTransportCredentials, which the caller did set.
func TestClientRefusesPlaintextWithoutOptIn(t *testing.T) {
	e := newEnv(t, envOpts{})
	tokens := &countingTokens{token: e.boundToken(tokenOpts{})}
	c, err := interceptor.NewClient(e.signer, tokens)
	if err != nil {
		t.Fatal(err)
	}
	_, err = policytestv1.NewGuardedServiceClient(e.conn(c.DialOptions()...)).Plain(context.Background(), &policytestv1.PlainRequest{})
	if err == nil || !strings.Contains(err.Error(), "interceptor.WithInsecureLocalTransport()") || !strings.Contains(err.Error(), "credentials.NewTLS") {
		t.Fatalf("call over plaintext = %v, want a refusal naming WithInsecureLocalTransport", err)
	}
	if n := tokens.calls.Load(); n != 0 {
		t.Errorf("the token source was asked %d times", n)
	}
	if n := len(e.audit.all()); n != 0 {
		t.Fatalf("the server saw %d calls; the token must not leave the client", n)
	}
	// With the option, the same connection carries the call.
	opted, err := interceptor.NewClient(e.signer, tokens, interceptor.WithInsecureLocalTransport(), interceptor.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policytestv1.NewGuardedServiceClient(e.conn(opted.DialOptions()...)).Plain(context.Background(), &policytestv1.PlainRequest{}); err != nil {
		t.Fatalf("with WithInsecureLocalTransport: %v", err)
	}
}

// countingTokens is a TokenSource that counts its calls.
type countingTokens struct {
	token string
	calls atomic.Int64
}

func (c *countingTokens) Token(context.Context) (string, error) {
	c.calls.Add(1)
	return c.token, nil
}

func TestNoSecretInAuditEvents(t *testing.T) {
	e := newEnv(t, envOpts{nonces: true})
	var secrets []string
	tok := e.boundToken(tokenOpts{})
	secrets = append(secrets, tok)
	c := e.client(tok)
	if _, err := c.Plain(context.Background(), &policytestv1.PlainRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range forgeries {
		creds := f.creds(e, mPlain)
		for i := 1; i < len(creds); i += 2 {
			v := creds[i]
			if _, after, ok := strings.Cut(v, " "); ok && creds[i-1] == "authorization" {
				v = after
			}
			if len(v) > 16 {
				secrets = append(secrets, v)
			}
		}
		_, _ = e.raw().Plain(withCreds(context.Background(), creds...), &policytestv1.PlainRequest{})
	}
	events := e.audit.all()
	if len(events) < len(forgeries) {
		t.Fatalf("only %d events", len(events))
	}
	for _, ev := range events {
		dump := fmt.Sprintf("%+v", ev)
		for _, s := range secrets {
			if strings.Contains(dump, s) || strings.Contains(dump, s[:len(s)/2]) {
				t.Fatalf("audit event contains a secret: %s", dump)
			}
		}
	}
}
