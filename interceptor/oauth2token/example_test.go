package oauth2token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/interceptor/oauth2token"
)

// Tokens from the client_credentials grant of golang.org/x/oauth2, with a
// DPoP proof on each token request. The token endpoint here stands for your
// authorization server: it demands a nonce first (RFC 9449 §8), then issues
// DPoP tokens.
func ExampleSource() {
	nonces, _ := dpop.NewNonces([]byte("the token endpoint's nonce key!!"), time.Minute, time.Now)
	verifier, _ := dpop.NewVerifier(dpop.WithNonces(nonces))
	var requests, issued atomic.Int32
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("DPoP-Nonce", nonces.Current())
		if _, err := verifier.Verify(r.Context(), dpop.Request{
			Proof: r.Header.Get("DPoP"), Method: http.MethodPost, Path: "/token", Authority: r.Host, AllowHTTP: true,
		}); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"use_dpop_nonce"}`)
			return
		}
		// The API the token is for (RFC 8707): without it, a server
		// issues an opaque token, or none.
		if r.PostFormValue("resource") != "https://bank.example" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_target"}`)
			return
		}
		// A real server mints a JWT whose cnf.jkt is the proof key's
		// thumbprint and whose aud is the resource.
		token := "token-" + strconv.Itoa(int(issued.Add(1)))
		_, _ = io.WriteString(w, `{"access_token":"`+token+`","token_type":"DPoP","expires_in":3600}`)
	}))
	defer endpoint.Close()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	cc := &clientcredentials.Config{ClientID: "bank-cli", ClientSecret: "secret", TokenURL: endpoint.URL + "/token",
		EndpointParams: url.Values{"resource": {"https://bank.example"}}} // Auth0: "audience" (docs/PROVIDERS.md)
	httpClient := &http.Client{Transport: &dpop.Transport{Signer: signer}}
	ts := oauth2token.Source(func(ctx context.Context) (*oauth2.Token, error) {
		return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	})

	ctx := context.Background()
	tok, err := ts.Token(ctx)
	fmt.Println(tok, err, requests.Load(), "requests")
	tok, _ = ts.Token(ctx) // cached until shortly before it expires
	fmt.Println(tok, requests.Load(), "requests")
	ts.Invalidate(tok) // what the Client does when the Guard refuses it
	tok, _ = ts.Token(ctx)
	fmt.Println(tok, requests.Load(), "requests")

	// The Client signs the gRPC calls with the same key (DialOptions).
	client, err := interceptor.NewClient(signer, ts)
	fmt.Println(client != nil, err)
	// Output:
	// token-1 <nil> 2 requests
	// token-1 2 requests
	// token-2 3 requests
	// true <nil>
}
