package dpop_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// newTransportSigner returns a Signer of its own (its own nonce memory)
// over the shared P-256 test key.
func newTransportSigner(t testing.TB) *dpop.Signer {
	t.Helper()
	keys(t)
	s, err := dpop.NewSigner(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenEndpoint is a token endpoint that checks every proof with a real
// Verifier (htm POST, htu its own URL) and answers use_dpop_nonce (RFC 9449
// §8) to a proof without its current nonce.
type tokenEndpoint struct {
	verifier *dpop.Verifier
	nonces   *dpop.Nonces

	mu       sync.Mutex
	requests int
	bodies   []string
	proofs   []*dpop.Proof // the accepted proofs
	refused  []dpop.Reason
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p, err := e.verifier.Verify(r.Context(), dpop.Request{
		Proof: r.Header.Get("DPoP"), Method: http.MethodPost, Path: "/token", Authority: r.Host, AllowHTTP: true,
	})
	e.mu.Lock()
	e.requests++
	e.bodies = append(e.bodies, string(body))
	if err != nil {
		e.refused = append(e.refused, dpop.ReasonOf(err))
	} else {
		e.proofs = append(e.proofs, p)
	}
	e.mu.Unlock()
	w.Header().Set("DPoP-Nonce", e.nonces.Current())
	w.Header().Set("Content-Type", "application/json")
	switch reason := dpop.ReasonOf(err); {
	case reason == dpop.ReasonNonceRequired || reason == dpop.ReasonNonceInvalid:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`)
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_dpop_proof"}`)
	default:
		_, _ = io.WriteString(w, `{"access_token":"at","token_type":"DPoP","expires_in":3600}`)
	}
}

func (e *tokenEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

func postForm(t *testing.T, client *http.Client, url, form string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// TestTransportTokenEndpointNonce: the token endpoint demands a nonce; the
// Transport retries once with a fresh proof that carries it, the body sent
// again, and later requests carry the remembered nonce from the start.
func TestTransportTokenEndpointNonce(t *testing.T) {
	v, nonces := testkit.NonceVerifier(t)
	ep := &tokenEndpoint{verifier: v, nonces: nonces}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	signer := newTransportSigner(t)
	client := &http.Client{Transport: &dpop.Transport{Signer: signer}}

	const form = "grant_type=client_credentials&scope=relay"
	resp := postForm(t, client, srv.URL+"/token", form)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s, want 200", resp.StatusCode, body)
	}
	if ep.count() != 2 {
		t.Fatalf("%d requests reached the server, want 2", ep.count())
	}
	if !slices.Equal(ep.refused, []dpop.Reason{dpop.ReasonNonceRequired}) {
		t.Errorf("refused %v, want the first proof for its missing nonce", ep.refused)
	}
	p := ep.proofs[0]
	if p.Nonce != nonces.Current() || p.HTM != http.MethodPost || p.HTU != srv.URL+"/token" || p.ATH != "" ||
		p.Thumbprint != signer.Thumbprint() {
		t.Errorf("accepted proof: nonce %q htm %q htu %q ath %q", p.Nonce, p.HTM, p.HTU, p.ATH)
	}
	if !slices.Equal(ep.bodies, []string{form, form}) {
		t.Errorf("bodies %q, want the form twice", ep.bodies)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if signer.Nonce(host) != nonces.Current() {
		t.Errorf("the signer remembers %q for %s", signer.Nonce(host), host)
	}

	// The nonce is remembered: the next token request needs one round trip.
	if resp := postForm(t, client, srv.URL+"/token", form); resp.StatusCode != http.StatusOK || ep.count() != 3 {
		t.Errorf("second token request: status %d after %d requests, want 200 after 3", resp.StatusCode, ep.count())
	}
}

// TestTransportNonceDemandedTwice: a server that refuses the retry too gets
// no third request, and the caller gets its 400 with the body intact.
func TestTransportNonceDemandedTwice(t *testing.T) {
	var requests atomic.Int32
	const errBody = `{"error":"use_dpop_nonce","error_description":"again"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("DPoP-Nonce", "nonce-"+string(rune('0'+n)))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, errBody)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &dpop.Transport{Signer: newTransportSigner(t)}}
	resp := postForm(t, client, srv.URL+"/token", "grant_type=client_credentials")
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusBadRequest || string(body) != errBody {
		t.Errorf("got %d %q (%v), want 400 %q", resp.StatusCode, body, err, errBody)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (one retry)", n)
	}
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// answering returns a base RoundTripper that records the requests and
// answers each with status, header and body; a nonce header is set to
// "n<attempt>".
func answering(status int, header http.Header, body string, seen *[]*http.Request) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
		}
		*seen = append(*seen, r)
		h := header.Clone()
		if h == nil {
			h = http.Header{}
		}
		if _, ok := h["Dpop-Nonce"]; !ok {
			h.Set("DPoP-Nonce", "n"+string(rune('0'+len(*seen))))
		}
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})
}

// TestTransportNonceDemands: which answers count as a nonce demand.
func TestTransportNonceDemands(t *testing.T) {
	www := func(v ...string) http.Header { return http.Header{"Www-Authenticate": v} }
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		retry  bool
	}{
		{"token endpoint", 400, nil, `{"error":"use_dpop_nonce"}`, true},
		{"token endpoint with description", 400, nil, `{"error_description":"x","error":"use_dpop_nonce"}`, true},
		{"token endpoint, other error", 400, nil, `{"error":"invalid_grant"}`, false},
		{"token endpoint, not JSON", 400, nil, `use_dpop_nonce`, false},
		{"token endpoint, error not a string", 400, nil, `{"error":["use_dpop_nonce"]}`, false},
		{"token endpoint, duplicate error", 400, nil, `{"error":"use_dpop_nonce","error":"invalid_grant"}`, false},
		{"token endpoint, over 64 KiB", 400, nil, `{"error":"use_dpop_nonce","x":"` + strings.Repeat("a", 64<<10) + `"}`, false},
		{"400 without a nonce", 400, http.Header{"Dpop-Nonce": nil}, `{"error":"use_dpop_nonce"}`, false},
		{"400 with an invalid nonce", 400, http.Header{"Dpop-Nonce": {"bad nonce"}}, `{"error":"use_dpop_nonce"}`, false},
		{"resource server", 401, www(`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`), "", true},
		{"resource server, token value", 401, www(`DPoP algs="ES256", error=use_dpop_nonce`), "", true},
		{"resource server, upper-case name", 401, www(`DPoP ERROR="use_dpop_nonce"`), "", true},
		{"resource server, second challenge", 401, www(`Bearer realm="api"`, `DPoP error="use_dpop_nonce"`), "", true},
		{"resource server, other error", 401, www(`DPoP error="invalid_token"`), "", false},
		{"resource server, inside a quoted string", 401, www(`DPoP realm="a, error=use_dpop_nonce, b"`), "", false},
		{"resource server, inside a quoted string with quoted-pairs", 401, www(`DPoP realm="a\" error=use_dpop_nonce \"b"`), "", false},
		{"resource server, longer name", 401, www(`DPoP xerror="use_dpop_nonce"`), "", false},
		{"resource server, longer value", 401, www(`DPoP error=use_dpop_nonce_x`), "", false},
		{"401 with the body of a 400", 401, nil, `{"error":"use_dpop_nonce"}`, false},
		{"success", 200, nil, `{"error":"use_dpop_nonce"}`, false},
		{"403", 403, www(`DPoP error="use_dpop_nonce"`), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []*http.Request
			tr := &dpop.Transport{Signer: newTransportSigner(t), Base: answering(tc.status, tc.header, tc.body, &seen)}
			req, _ := http.NewRequest(http.MethodPost, "https://as.example/token", strings.NewReader("grant_type=client_credentials"))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			want := 1
			if tc.retry {
				want = 2
			}
			if len(seen) != want {
				t.Fatalf("%d attempts, want %d", len(seen), want)
			}
			if body, _ := io.ReadAll(resp.Body); string(body) != tc.body {
				t.Errorf("the caller got a body of %d bytes, want the server's %d", len(body), len(tc.body))
			}
		})
	}
}

// TestTransportSameNonceNotRetried: a demand that repeats the nonce the
// proof carried is not retried.
func TestTransportSameNonceNotRetried(t *testing.T) {
	var seen []*http.Request
	signer := newTransportSigner(t)
	signer.SetNonce("as.example", "n1")
	tr := &dpop.Transport{Signer: signer, Base: answering(400, http.Header{"Dpop-Nonce": {"n1"}}, `{"error":"use_dpop_nonce"}`, &seen)}
	req, _ := http.NewRequest(http.MethodPost, "https://as.example/token", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(seen) != 1 {
		t.Errorf("%d attempts, want 1", len(seen))
	}
}

// TestTransportBodyWithoutGetBody: a body that cannot be rewound is sent
// once and the demand returned to the caller.
func TestTransportBodyWithoutGetBody(t *testing.T) {
	var seen []*http.Request
	const errBody = `{"error":"use_dpop_nonce"}`
	signer := newTransportSigner(t)
	tr := &dpop.Transport{Signer: signer, Base: answering(400, nil, errBody, &seen)}
	req, _ := http.NewRequest(http.MethodPost, "https://as.example/token", nil)
	req.Body = io.NopCloser(strings.NewReader("grant_type=client_credentials"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if len(seen) != 1 || resp.StatusCode != 400 || string(body) != errBody {
		t.Errorf("%d attempts, %d %q; want 1 attempt, 400 %q", len(seen), resp.StatusCode, body, errBody)
	}
	if n := signer.Nonce("as.example"); n != "n1" {
		t.Errorf("the nonce %q was not remembered", n)
	}
}

// TestTransportLeavesRequestAlone: the caller's request keeps its headers
// (a DPoP header it set is replaced on the wire only) and its URL.
func TestTransportLeavesRequestAlone(t *testing.T) {
	var seen []*http.Request
	tr := &dpop.Transport{Signer: newTransportSigner(t), Base: answering(400, nil, `{"error":"use_dpop_nonce"}`, &seen)}
	req, _ := http.NewRequest(http.MethodPost, "https://as.example/token?x=1", strings.NewReader("a=b"))
	req.Header.Set("Authorization", "DPoP tok")
	req.Header.Set("DPoP", "stale")
	before := req.Header.Clone()
	beforeURL := *req.URL
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if !maps.EqualFunc(req.Header, before, slices.Equal) || *req.URL != beforeURL {
		t.Errorf("the caller's request changed: %v %v", req.Header, req.URL)
	}
	if len(seen) != 2 {
		t.Fatalf("%d attempts, want 2", len(seen))
	}
	for i, r := range seen {
		if r == req || r.Header.Get("DPoP") == "stale" || len(r.Header.Values("DPoP")) != 1 {
			t.Errorf("attempt %d: the caller's request or its DPoP header went out", i)
		}
	}
	if seen[0].Header.Get("DPoP") == seen[1].Header.Get("DPoP") {
		t.Error("the retry reused the first proof")
	}
}

// TestTransportResourceServer: a resource server's 401 use_dpop_nonce
// (RFC 9449 §9); the proofs are bound to the token, and the query and
// fragment are not part of htu.
func TestTransportResourceServer(t *testing.T) {
	v, nonces := testkit.NonceVerifier(t)
	signer := newTransportSigner(t)
	const token = "access-token-1"
	var mu sync.Mutex
	var proofs []*dpop.Proof
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.Verify(r.Context(), dpop.Request{
			Proof: r.Header.Get("DPoP"), Method: r.Method, Path: r.URL.Path, Authority: r.Host, AllowHTTP: true,
			AccessToken: strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "), ExpectedJKT: signer.Thumbprint(),
		})
		mu.Lock()
		requests++
		if p != nil {
			proofs = append(proofs, p)
		}
		mu.Unlock()
		w.Header().Set("DPoP-Nonce", nonces.Current())
		if err != nil {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, r.URL.RawQuery)
	}))
	defer srv.Close()

	client := &http.Client{Transport: &dpop.Transport{Signer: signer}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/accounts/42?limit=5#top", nil)
	req.Header.Set("Authorization", "DPoP "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "limit=5" {
		t.Fatalf("got %d %q, want 200 with the query", resp.StatusCode, body)
	}
	if requests != 2 || len(proofs) != 1 {
		t.Fatalf("%d requests, %d accepted proofs; want 2 and 1", requests, len(proofs))
	}
	p := proofs[0]
	if p.ATH != dpop.ATH(token) || p.HTM != http.MethodGet || p.HTU != srv.URL+"/accounts/42" || p.Nonce != nonces.Current() {
		t.Errorf("proof: ath %q htm %q htu %q nonce %q", p.ATH, p.HTM, p.HTU, p.Nonce)
	}
}

// TestTransportHTU: htu is the URL without query, fragment or userinfo, on
// the request's Host when set; ath only for the DPoP scheme.
func TestTransportHTU(t *testing.T) {
	v, err := dpop.NewVerifier()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, host, auth, wantHTU, wantATH string
	}{
		{"query and fragment", "https://api.example/a/b?q=1&r=2#frag", "", "", "https://api.example/a/b", ""},
		{"empty query", "https://api.example/a?", "", "", "https://api.example/a", ""},
		{"userinfo", "https://user:pw@api.example/a", "", "", "https://api.example/a", ""},
		{"empty path", "https://api.example", "", "", "https://api.example/", ""},
		{"escaped path", "https://api.example/a%2Fb", "", "", "https://api.example/a%2Fb", ""},
		{"host override", "https://10.0.0.1:8443/a", "api.example:8443", "", "https://api.example:8443/a", ""},
		{"DPoP token", "https://api.example/a", "", "DPoP tok", "https://api.example/a", dpop.ATH("tok")},
		{"scheme case", "https://api.example/a", "", "dpop tok", "https://api.example/a", dpop.ATH("tok")},
		{"Bearer token", "https://api.example/a", "", "Bearer tok", "https://api.example/a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []*http.Request
			tr := &dpop.Transport{Signer: newTransportSigner(t), Base: answering(200, nil, "", &seen)}
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			u, _ := url.Parse(tc.wantHTU)
			p, err := v.Verify(context.Background(), dpop.Request{
				Proof: seen[0].Header.Get("DPoP"), Method: http.MethodGet, Path: u.EscapedPath(), Authority: u.Host,
			})
			if err != nil {
				t.Fatal(err)
			}
			if p.HTU != tc.wantHTU || p.ATH != tc.wantATH {
				t.Errorf("htu %q ath %q, want %q %q", p.HTU, p.ATH, tc.wantHTU, tc.wantATH)
			}
		})
	}
}

// closeRecorder records whether a request body was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestTransportErrors: no Signer, a URL no proof can name, a base error, a
// body that cannot be rewound; the request body is closed every time.
func TestTransportErrors(t *testing.T) {
	baseErr := errors.New("connection refused")
	for _, tc := range []struct {
		name string
		tr   *dpop.Transport
		url  string
		want string
	}{
		{"nil signer", &dpop.Transport{}, "https://as.example/token", "dpop: Transport has no Signer"},
		{"not http", &dpop.Transport{Signer: newTransportSigner(t)}, "ftp://as.example/token", "dpop: invalid htu"},
		{"base error", &dpop.Transport{Signer: newTransportSigner(t), Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			_ = r.Body.Close()
			return nil, baseErr
		})}, "https://as.example/token", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeRecorder{Reader: strings.NewReader("a=b")}
			req, _ := http.NewRequest(http.MethodPost, tc.url, body)
			resp, err := tc.tr.RoundTrip(req)
			if resp != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, %v; want an error with %q", resp, err, tc.want)
			}
			if !body.closed {
				t.Error("the request body was not closed")
			}
		})
	}

	t.Run("rewind error", func(t *testing.T) {
		var seen []*http.Request
		var first *closeRecorder
		tr := &dpop.Transport{Signer: newTransportSigner(t), Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, r)
			_ = r.Body.Close()
			first = &closeRecorder{Reader: strings.NewReader(`{"error":"use_dpop_nonce"}`)}
			return &http.Response{StatusCode: 400, Header: http.Header{"Dpop-Nonce": {"n1"}}, Body: first}, nil
		})}
		req, _ := http.NewRequest(http.MethodPost, "https://as.example/token", bytes.NewReader([]byte("a=b")))
		req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
		resp, err := tr.RoundTrip(req)
		if resp != nil || err == nil || !strings.Contains(err.Error(), "gone") || len(seen) != 1 || !first.closed {
			t.Errorf("got %v, %v after %d attempts (first response closed: %v)", resp, err, len(seen), first.closed)
		}
	})
}

// FuzzTransportResponse feeds arbitrary error answers to the Transport: it
// must never panic, retry at most once and only on a 400 or 401, and hand
// the caller the server's body byte for byte.
func FuzzTransportResponse(f *testing.F) {
	f.Add(true, "", []byte(`{"error":"use_dpop_nonce"}`))
	f.Add(false, `DPoP error="use_dpop_nonce"`, []byte(nil))
	f.Add(false, `DPoP realm="a\" error=use_dpop_nonce \"b", error=use_dpop_nonce`, []byte(nil))
	signer := newTransportSigner(f)
	f.Fuzz(func(t *testing.T, tokenEndpoint bool, wwwAuthenticate string, body []byte) {
		status := http.StatusUnauthorized
		if tokenEndpoint {
			status = http.StatusBadRequest
		}
		var seen []*http.Request
		header := http.Header{"Www-Authenticate": {wwwAuthenticate}}
		tr := &dpop.Transport{Signer: signer, Base: answering(status, header, string(body), &seen)}
		signer.SetNonce("as.example", "")
		req, _ := http.NewRequest(http.MethodPost, "https://as.example/token", bytes.NewReader([]byte("a=b")))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if len(seen) < 1 || len(seen) > 2 {
			t.Fatalf("%d attempts", len(seen))
		}
		if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, body) {
			t.Fatalf("the caller got %q, the server sent %q", got, body)
		}
	})
}
