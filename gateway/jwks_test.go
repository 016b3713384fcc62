package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/gateway/assertion"
)

// TestJWKSOverTLS: ServeJWKS (jwks_listen) serves the assertion keys over
// TLS with the gateway's certificate; a backend verifier fetches them with
// a client that trusts it, and verifies the gateway's assertions; a plain
// HTTP request gets no key; a verifier refuses a plain http JWKS URL of
// another host before fetching anything. Close stops the server.
func TestJWKSOverTLS(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	r := startGateway(t, f.config(be.addr))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.gw.ServeJWKS(lis) }()
	url := "https://" + lis.Addr().String() + "/.well-known/jwks.json"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.cert.Pool, MinVersion: tls.VersionTLS12}}}

	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got, want any
	_ = json.Unmarshal(body, &got)
	_ = json.Unmarshal(f.assertionPub, &want)
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %s %s, want the assertion JWKS", url, resp.Status, body)
	}
	if resp, err := client.Get("http://" + lis.Addr().String() + "/.well-known/jwks.json"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"keys"`) {
			t.Fatal("the keys were served in plain HTTP")
		}
	}

	// A Go backend fetches them from the gateway, and verifies what it signs.
	v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud, JWKSURL: url, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	data, err := os.ReadFile(f.assertionKey)
	if err != nil {
		t.Fatal(err)
	}
	key, kid, err := assertion.ParsePrivateJWK(data)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := assertion.NewSigner(assertion.SignerConfig{Key: key, KeyID: kid, Issuer: assertIssuer, Audience: assertAud})
	if err != nil {
		t.Fatal(err)
	}
	a, err := signer.Sign(&assertion.Identity{Subject: "alice", Method: mEcho, Scopes: []string{"relay"}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(context.Background(), a); err != nil || id.Subject != "alice" {
		t.Fatalf("an assertion with the keys fetched over TLS: %+v, %v", id, err)
	}
	// Without a client that trusts the gateway's certificate, nothing is
	// fetched (the system's roots do not know the test CA).
	short := &http.Client{Timeout: time.Second}
	if v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud, JWKSURL: url, HTTPClient: short}); err == nil {
		v.Close()
		t.Fatal("the keys fetched from a server the client does not trust")
	}
	if v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud,
		JWKSURL: "http://gateway.example:8081/.well-known/jwks.json"}); err == nil || !strings.Contains(err.Error(), "plain http") {
		if v != nil {
			v.Close()
		}
		t.Fatalf("a plain http JWKS URL of another host: %v", err)
	}

	r.gw.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeJWKS after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeJWKS still serving after Close")
	}
	if err := r.gw.ServeJWKS(lis); err == nil {
		t.Error("ServeJWKS after Close served")
	}
}

// TestJWKSPlainOnLoopback: with insecure_plaintext (local testing) the
// JWKS is served in plain HTTP, on the loopback address the configuration
// allows.
func TestJWKSPlainOnLoopback(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	cfg := f.config(be.addr)
	cfg.Tls, cfg.InsecurePlaintext, cfg.JwksListen = nil, true, "127.0.0.1:0"
	r := startGateway(t, cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.gw.ServeJWKS(lis) }()
	resp, err := http.Get("http://" + lis.Addr().String() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"keys"`) {
		t.Fatalf("%s %s", resp.Status, body)
	}
}
