package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

// A token request through a Transport: the token endpoint demands a nonce
// (RFC 9449 §8), the Transport sends the request once more with it, and the
// endpoint verifies the proof.
func ExampleTransport() {
	nonces, _ := dpop.NewNonces([]byte("the token endpoint's nonce key!!"), time.Minute, time.Now)
	verifier, _ := dpop.NewVerifier(dpop.WithNonces(nonces))
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", nonces.Current())
		p, err := verifier.Verify(r.Context(), dpop.Request{
			Proof: r.Header.Get("DPoP"), Method: http.MethodPost, Path: "/token", Authority: r.Host, AllowHTTP: true,
		})
		if err != nil {
			fmt.Println("endpoint refuses:", dpop.ReasonOf(err))
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"use_dpop_nonce"}`)
			return
		}
		fmt.Println("endpoint accepts a proof with its nonce:", p.Nonce == nonces.Current())
		_, _ = io.WriteString(w, `{"access_token":"...","token_type":"DPoP","expires_in":300}`)
	}))
	defer endpoint.Close()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	client := &http.Client{Transport: &dpop.Transport{Signer: signer}}
	form := url.Values{"grant_type": {"client_credentials"}}
	resp, err := client.Post(endpoint.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output:
	// endpoint refuses: DPOP_NONCE_REQUIRED
	// endpoint accepts a proof with its nonce: true
	// 200 OK {"access_token":"...","token_type":"DPoP","expires_in":300}
}
