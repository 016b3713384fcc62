package interceptor_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// hostAddress returns a listener on an address of this machine that is
// not a loopback address (what another host on the network would be), or
// skips the test when the machine has none.
func hostAddress(t *testing.T) net.Listener {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		ip, ok := a.(*net.IPNet)
		if !ok || ip.IP.IsLoopback() || ip.IP.To4() == nil || ip.IP.IsLinkLocalUnicast() {
			continue
		}
		if lis, err := net.Listen("tcp", net.JoinHostPort(ip.IP.String(), "0")); err == nil {
			return lis
		}
	}
	t.Skip("no address of this machine besides loopback")
	return nil
}

// TestJWKSOverPlainHTTP: the issuer's keys decide who is who, so they are
// fetched over https only (plain http on a loopback host, for tests): a
// JWKSURL that is plain http on another host, or a redirect to one, is
// refused unless InsecureHTTPJWKS says so explicitly; DiscoverJWKS applies
// the same rule. Before, NewJWTVerifier fetched http:// URLs of any host
// (and ignored JWTConfig.HTTPClient: jwk.Cache fetched with its own).
func TestJWKSOverPlainHTTP(t *testing.T) {
	is := testkit.NewIssuer(t)
	var remote string
	var farFetches atomic.Int32
	keys := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect-to-http" {
			http.Redirect(w, r, remote, http.StatusFound)
			return
		}
		_, _ = w.Write(is.PublicJWKS())
	})
	// A plain HTTP server on another address than loopback, an https one
	// and a plain one on loopback.
	far := &httptest.Server{Listener: hostAddress(t), Config: &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { farFetches.Add(1); keys(w, r) })}}
	far.Start()
	t.Cleanup(far.Close)
	remote = far.URL + "/jwks.json"
	tlsSrv, local := httptest.NewTLSServer(keys), httptest.NewServer(keys)
	t.Cleanup(tlsSrv.Close)
	t.Cleanup(local.Close)
	client := tlsSrv.Client()
	client.Timeout = 5 * time.Second
	for _, tc := range []struct {
		name     string
		url      string
		insecure bool
		refused  string // part of the error; "" when accepted
	}{
		{"http JWKS URL of another host", remote, false, "plain http on a host that is not a loopback address"},
		{"https JWKS URL redirecting to http", tlsSrv.URL + "/redirect-to-http", false, "fetching JWKS"},
		{"control: https JWKS URL", tlsSrv.URL + "/jwks.json", false, ""},
		{"control: http JWKS URL on loopback", local.URL + "/jwks.json", false, ""},
		{"control: http JWKS URL of another host, InsecureHTTPJWKS", remote, true, ""},
		{"control: a redirect to http, InsecureHTTPJWKS", tlsSrv.URL + "/redirect-to-http", true, ""},
		{"ftp JWKS URL", "ftp://issuer.example/jwks.json", true, "not an https URL"},
		{"JWKS URL with user information", "https://user:pw@issuer.example/jwks.json", false, "user information"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			farFetches.Store(0)
			c := *client
			if tc.refused != "" {
				c.Timeout = time.Second // bounds the wait for a fetch that must fail
			}
			v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
				Issuer: testIssuer, Audience: testAudience, JWKSURL: tc.url, HTTPClient: &c, InsecureHTTPJWKS: tc.insecure,
			})
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					if v != nil {
						v.Close()
					}
					t.Fatalf("%s: %v, want an error about %q", tc.url, err, tc.refused)
				}
				if n := farFetches.Load(); n != 0 {
					t.Fatalf("the plain http server was asked for the keys %d times", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			tok := is.Mint(t, time.Now(), testkit.TokenOptions{Issuer: testIssuer, Audience: testAudience})
			if _, err := v.VerifyToken(context.Background(), tok); err != nil {
				t.Fatalf("a token with the fetched keys: %v", err)
			}
		})
	}
	for _, u := range []string{"http://localhost:1/", "http://127.0.0.2/", "http://[::1]/", "https://issuer.example/"} {
		if err := interceptor.CheckJWKSURL(u, false); err != nil {
			t.Errorf("CheckJWKSURL(%s): %v", u, err)
		}
	}
	for _, u := range []string{"http://issuer.example/", "http://10.0.0.1/", "//issuer.example/", "issuer.example", "https:opaque"} {
		if err := interceptor.CheckJWKSURL(u, false); err == nil {
			t.Errorf("CheckJWKSURL(%s) accepted", u)
		}
	}
}
