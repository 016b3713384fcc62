package oauth2token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/interceptor/oauth2token"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/stepuptest"
	"github.com/stepupgrpc/stepup/testing/relayserver"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const (
	ccClientID     = "relay-client"
	ccClientSecret = "relay-secret"
)

// ccEndpoint is a token endpoint for the client_credentials grant (RFC 6749
// §4.4) that issues DPoP-bound tokens (RFC 9449 §5): it authenticates the
// client, verifies the proof with a real dpop.Verifier, demands a nonce
// first (§8), and mints a JWT bound to the proof key with the test issuer.
type ccEndpoint struct {
	t         *testing.T
	is        *stepuptest.TokenIssuer
	verifier  *dpop.Verifier
	nonces    *dpop.Nonces
	tokenType string // "DPoP", or what a server that ignores proofs says
	// expiredFirst makes the first token already expired, without
	// expires_in: the client cannot tell until the Guard refuses it.
	expiredFirst bool

	requests atomic.Int32 // every request that reached the endpoint
	issued   atomic.Int32 // the tokens issued
}

func newCCEndpoint(t *testing.T, is *stepuptest.TokenIssuer, tokenType string) *ccEndpoint {
	t.Helper()
	v, nonces := testkit.NonceVerifier(t)
	return &ccEndpoint{t: t, is: is, verifier: v, nonces: nonces, tokenType: tokenType}
}

func (e *ccEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("DPoP-Nonce", e.nonces.Current())
	fail := func(code string) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != ccClientID || secret != ccClientSecret {
		fail("invalid_client")
		return
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		fail("invalid_request")
		return
	}
	p, err := e.verifier.Verify(r.Context(), dpop.Request{
		Proof: r.Header.Get("DPoP"), Method: http.MethodPost, Path: "/token", Authority: r.Host, AllowHTTP: true,
	})
	switch dpop.ReasonOf(err) {
	case "":
	case dpop.ReasonNonceRequired, dpop.ReasonNonceInvalid:
		fail("use_dpop_nonce")
		return
	default:
		fail("invalid_dpop_proof")
		return
	}
	now := time.Now()
	opts := stepuptest.TokenOptions{JKT: p.Thumbprint, Scope: r.PostForm.Get("scope"), Expiry: now.Add(time.Hour)}
	resp := map[string]any{"token_type": e.tokenType, "expires_in": 3600, "scope": opts.Scope}
	if e.issued.Add(1) == 1 && e.expiredFirst {
		opts.IssuedAt, opts.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour)
		delete(resp, "expires_in")
	}
	resp["access_token"] = e.is.Token(e.t, opts)
	_ = json.NewEncoder(w).Encode(resp)
}

// countingRelay counts the runs of its Echo handler.
type countingRelay struct {
	relayserver.Relay
	runs atomic.Int32
}

func (c *countingRelay) Echo(ctx context.Context, req *relayv1.EchoRequest) (*relayv1.EchoResponse, error) {
	c.runs.Add(1)
	return c.Relay.Echo(ctx, req)
}

// oauth2Setup is a token endpoint, a Guard trusting its tokens in front of
// the relay service, and a Client whose tokens come from the endpoint
// through the oauth2 client_credentials flow with DPoP proofs.
func oauth2Setup(t *testing.T, tokenType string, expiredFirst bool) (*ccEndpoint, *countingRelay, relayv1.RelayServiceClient) {
	t.Helper()
	is := stepuptest.NewIssuer(t)
	ep := newCCEndpoint(t, is, tokenType)
	ep.expiredFirst = expiredFirst
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)

	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithRequirePolicy(),
		interceptor.WithPolicy("relay.v1.RelayService", &stepupv1.Policy{Scopes: []string{"relay"}}))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	cc := &clientcredentials.Config{
		ClientID: ccClientID, ClientSecret: ccClientSecret, TokenURL: srv.URL + "/token",
		Scopes: []string{"relay"}, AuthStyle: oauth2.AuthStyleInHeader,
	}
	httpClient := &http.Client{Transport: &dpop.Transport{Signer: signer}}
	ts := oauth2token.Source(func(ctx context.Context) (*oauth2.Token, error) {
		return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	})
	client, err := interceptor.NewClient(signer, ts, interceptor.WithInsecureLocalTransport())
	if err != nil {
		t.Fatal(err)
	}
	relay := &countingRelay{Relay: relayserver.Relay{Counter: &relayserver.Counter{}}}
	conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { relayv1.RegisterRelayServiceServer(s, relay) },
		&stepuptest.Caller{Key: key, Signer: signer, Client: client})
	return ep, relay, relayv1.NewRelayServiceClient(conn)
}

// TestOAuth2TokenSourceEndToEnd: the client_credentials token request
// carries a proof, answers the endpoint's nonce demand, and gets a token
// bound to the client's key; the Guard refuses the first (expired) token
// and the Client fetches one more and retries; the next call reuses it.
func TestOAuth2TokenSourceEndToEnd(t *testing.T) {
	ep, relay, rc := oauth2Setup(t, "DPoP", true)
	resp, err := rc.Echo(context.Background(), &relayv1.EchoRequest{Payload: []byte("hi")})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if string(resp.GetPayload()) != "hi" || relay.runs.Load() != 1 {
		t.Errorf("payload %q after %d handler runs, want hi after 1", resp.GetPayload(), relay.runs.Load())
	}
	// The nonce demand, the expired token, its replacement (the nonce is
	// remembered by then).
	if r, i := ep.requests.Load(), ep.issued.Load(); r != 3 || i != 2 {
		t.Errorf("%d token requests, %d tokens issued; want 3 and 2", r, i)
	}
	if _, err := rc.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if r := ep.requests.Load(); r != 3 || relay.runs.Load() != 2 {
		t.Errorf("second call: %d token requests (want the cached token, 3), %d runs", r, relay.runs.Load())
	}
}

// TestOAuth2TokenSourceRefusesBearer: a token endpoint that ignores the
// proof and issues a Bearer token: the call fails with the adapter's error
// before it is sent, and the handler never runs.
func TestOAuth2TokenSourceRefusesBearer(t *testing.T) {
	ep, relay, rc := oauth2Setup(t, "Bearer", false)
	_, err := rc.Echo(context.Background(), &relayv1.EchoRequest{})
	if err == nil || !strings.Contains(err.Error(), interceptor.ErrNotDPoPToken.Error()) || !strings.Contains(err.Error(), `"Bearer"`) {
		t.Errorf("call: %v, want the adapter's refusal of the Bearer token", err)
	}
	if n := relay.runs.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if i := ep.issued.Load(); i != 1 {
		t.Errorf("%d tokens issued, want 1", i)
	}
}

// TestOAuth2TokenSource: the token type check, the expiry, the errors.
func TestOAuth2TokenSource(t *testing.T) {
	var fetches int
	var next *oauth2.Token
	var fetchErr error
	ts := oauth2token.Source(func(context.Context) (*oauth2.Token, error) {
		fetches++
		return next, fetchErr
	})
	ctx := context.Background()

	for _, typ := range []string{"DPoP", "dpop", "DPOP"} {
		next = &oauth2.Token{AccessToken: "tok-" + typ, TokenType: typ, Expiry: time.Now().Add(time.Hour)}
		ts.Invalidate("tok-DPoP")
		ts.Invalidate("tok-dpop")
		if tok, err := ts.Token(ctx); err != nil || tok != "tok-"+typ {
			t.Errorf("token_type %q: %q, %v", typ, tok, err)
		}
	}
	// Kept until a minute before Expiry.
	fetches = 0
	for range 3 {
		_, _ = ts.Token(ctx)
	}
	if fetches != 0 {
		t.Errorf("%d fetches for a token valid for an hour, want 0", fetches)
	}
	// A 30 s token is reused too (until a quarter of its life is left;
	// TestCachingTokenSourceReusesShortLivedTokens has the boundaries).
	ts.Invalidate("tok-DPOP")
	next = &oauth2.Token{AccessToken: "short", TokenType: "DPoP", Expiry: time.Now().Add(30 * time.Second)}
	for range 3 {
		_, _ = ts.Token(ctx)
	}
	if fetches != 1 {
		t.Errorf("%d fetches for a token expiring in 30s, want 1", fetches)
	}
	// One already expired when it arrives is never kept.
	ts.Invalidate("short")
	fetches = 0
	next = &oauth2.Token{AccessToken: "short", TokenType: "DPoP", Expiry: time.Now().Add(-time.Second)}
	for range 3 {
		_, _ = ts.Token(ctx)
	}
	if fetches != 3 {
		t.Errorf("%d fetches for an expired token, want 3", fetches)
	}

	for _, typ := range []string{"Bearer", "bearer", "", "N_A", "DPoP-ish"} {
		ts.Invalidate("short")
		next = &oauth2.Token{AccessToken: "unbound", TokenType: typ, Expiry: time.Now().Add(time.Hour)}
		if tok, err := ts.Token(ctx); tok != "" || !errors.Is(err, interceptor.ErrNotDPoPToken) {
			t.Errorf("token_type %q: %q, %v; want ErrNotDPoPToken", typ, tok, err)
		}
	}
	next = nil
	if _, err := ts.Token(ctx); err == nil {
		t.Error("a nil token was accepted")
	}
	fetchErr = errors.New("token endpoint down")
	if _, err := ts.Token(ctx); !errors.Is(err, fetchErr) {
		t.Errorf("fetch error: %v", err)
	}
	if _, err := oauth2token.Source(nil).Token(ctx); err == nil {
		t.Error("a nil fetch function gave no error")
	}
}
