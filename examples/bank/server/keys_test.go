package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/browserkit"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const testAudience = "https://bank.example"

// caller is a DPoP key and a bank client that signs with it.
type caller struct {
	signer *dpop.Signer
}

func newCaller(t *testing.T) *caller {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return &caller{signer: s}
}

// bank dials addr with token and opts (a responder).
func (c *caller) bank(t *testing.T, addr, token string, opts ...interceptor.ClientOption) bankv1.BankServiceClient {
	t.Helper()
	client, err := interceptor.NewClient(c.signer, interceptor.StaticToken(token), append(opts, interceptor.WithInsecureLocalTransport())...)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, append(client.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return bankv1.NewBankServiceClient(cc)
}

// TestServeKeysFromTheIssuer: --discover and --jwks-url start the server
// from the issuer's published keys, which it fetches again every
// --jwks-refresh: after the issuer rotates its key, tokens signed with the
// new one are accepted without a restart. --token-leeway sets the clock
// skew tolerated: a token expired 10 s ago is refused under 2 s of leeway
// (the default 30 s would accept it).
func TestServeKeysFromTheIssuer(t *testing.T) {
	old, next := testkit.NewIssuer(t), testkit.NewIssuer(t)
	var mu sync.Mutex
	serving := old.PublicJWKS()
	var issuer string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/keys"})
		case "/keys":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(serving)
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	issuer = idp.URL
	dir := t.TempDir()
	totp := filepath.Join(dir, "totp.json")
	if err := os.WriteFile(totp, []byte(`{"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{{"--discover"}, {"--jwks-url", issuer + "/keys"}} {
		t.Run(keys[0], func(t *testing.T) {
			mu.Lock()
			serving = old.PublicJWKS()
			mu.Unlock()
			addr, _, _ := startServer(t, append([]string{"--listen", "127.0.0.1:0", "--insecure-plaintext",
				"--issuer", issuer, "--audience", testAudience, "--totp-secrets", totp,
				"--jwks-refresh", "1s", "--token-leeway", "2s"}, keys...)...)
			c := newCaller(t)
			balance := func(is *testkit.Issuer, exp time.Time) error {
				tok := is.Mint(t, time.Now(), testkit.TokenOptions{Issuer: issuer, Audience: testAudience, JKT: c.signer.Thumbprint(), Scope: "bank", Expiry: exp})
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := c.bank(t, addr, tok).GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
				return err
			}
			if err := balance(old, time.Time{}); err != nil {
				t.Fatalf("a token of the published key: %v", err)
			}
			if err := balance(next, time.Time{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("a token of a key not yet published: %v", err)
			}
			if err := balance(old, time.Now().Add(-10*time.Second)); status.Code(err) != codes.Unauthenticated {
				t.Errorf("a token expired 10 s ago, under --token-leeway 2s: %v", err)
			}
			mu.Lock()
			serving = next.PublicJWKS()
			mu.Unlock()
			// Waits on the refresh (bounded); asserts no timing.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				err := balance(next, time.Time{})
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the rotated key was never accepted: %v", err)
				}
			}
		})
	}
}

// TestServePasskeysAndApproval: --webauthn-credentials and
// --webauthn-origin turn the webauthn factor on, --approval-listen the
// approval factor with the approver page mounted there. A transfer is
// stepped up with a passkey, then approved on the page by the same user
// signed in with that passkey (the page's own endpoints, as its script
// calls them).
func TestServePasskeysAndApproval(t *testing.T) {
	// A free port for the page, whose origin the passkey signs for.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	lis.Close()
	origin := "http://localhost:" + port
	soft, err := webauthn.NewSoftAuthenticator("localhost", origin)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := soft.RegisterCredential([]byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	passkeys, _ := json.Marshal(map[string][]passkeyFile{"alice": {{ID: base64url.EncodeToString(cred.ID), PublicKey: base64url.EncodeToString(cred.PublicKey)}}})
	credsFile := filepath.Join(dir, "passkeys.json")
	if err := os.WriteFile(credsFile, passkeys, 0o600); err != nil {
		t.Fatal(err)
	}
	is := testkit.NewIssuer(t)
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, is.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, stdout, stderr := startServer(t, "--listen", "127.0.0.1:0", "--insecure-plaintext",
		"--issuer", "https://issuer.example", "--audience", testAudience, "--jwks", jwks,
		"--webauthn-credentials", credsFile, "--webauthn-origin", origin, "--approval-listen", "127.0.0.1:"+port)
	if !strings.Contains(stdout.String(), "approver page on http://127.0.0.1:"+port+"/") {
		t.Errorf("stdout does not say where the page is:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), `"factors":["webauthn","approval"]`) {
		t.Errorf("the factors logged at start:\n%s", stderr.String())
	}
	c := newCaller(t)
	token := is.Mint(t, time.Now(), testkit.TokenOptions{Issuer: "https://issuer.example", Audience: testAudience,
		JKT: c.signer.Thumbprint(), Scope: "bank bank:transfer"})
	transfer := func(bank bankv1.BankServiceClient, amount int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := bank.Transfer(ctx, &bankv1.TransferRequest{FromAccountId: "alice-checking", ToIban: "DE02100100109307118603", AmountMinor: amount, Currency: "EUR"})
		return err
	}

	if err := transfer(c.bank(t, addr, token, interceptor.WithResponder(challenge.WebAuthnResponder(soft))), 1500); err != nil {
		t.Fatalf("a transfer stepped up with the passkey: %v", err)
	}
	if !strings.Contains(stderr.String(), `"factor":"webauthn"`) {
		t.Errorf("no webauthn step-up audited:\n%s", stderr.String())
	}

	codes := make(chan string, 1)
	laptop := c.bank(t, addr, token, interceptor.WithResponder(challenge.ApprovalResponder(
		func(_ context.Context, _ *stepupv1.StepUpChallenge, code string) error { codes <- code; return nil })))
	done := make(chan error, 1)
	go func() { done <- transfer(laptop, 2500) }()
	var code string
	select {
	case code = <-codes:
	case err := <-done:
		t.Fatalf("the transfer ended before asking for an approval: %v", err)
	}
	amount, to, err := browserkit.ApproveOverHTTP(context.Background(), origin, soft, "alice", code)
	if err != nil {
		t.Fatalf("approving on the page: %v", err)
	}
	if !strings.Contains(amount, "25.00") || to != "DE02100100109307118603" {
		t.Errorf("the page showed amount %q, to %q", amount, to)
	}
	if err := <-done; err != nil {
		t.Fatalf("the transfer after the approval: %v", err)
	}
	if !strings.Contains(stderr.String(), `"factor":"approval"`) {
		t.Errorf("no approval step-up audited:\n%s", stderr.String())
	}
}
