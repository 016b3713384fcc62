package dpop

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// maxErrorBody bounds how much of a 400 response Transport reads to learn
// whether it is a use_dpop_nonce error: an OAuth error response is a small
// JSON object (RFC 6749 §5.2).
const maxErrorBody = 64 << 10

// maxDrain bounds how much of a refused response Transport reads before
// closing it, so that the connection can be reused for the retry.
const maxDrain = 4 << 10

// Transport is an http.RoundTripper that adds a DPoP proof (RFC 9449 §4) to
// every request: to token requests (RFC 9449 §5), and to requests to a
// resource server that carry "Authorization: DPoP <token>", whose proofs it
// binds to the token through ath (RFC 9449 §7).
//
// The proof's htm is the request method and its htu the request URL without
// query, fragment or userinfo; when req.Host is set, it is the authority
// (the Host header the server sees). The proof carries the nonce the Signer
// remembers for that authority. A DPoP-Nonce header in any response is
// remembered (Signer.SetNonce), and when the server demands a nonce with a
// new one — a token endpoint's 400 with error "use_dpop_nonce" (RFC 9449
// §8), a resource server's 401 whose WWW-Authenticate says
// error="use_dpop_nonce" (§9) — the request is sent once more with a fresh
// proof carrying it. A request with a body is retried only when it has
// GetBody (http.NewRequest sets it for the usual in-memory bodies);
// otherwise, and when the second answer demands a nonce again, the
// response is returned as it is.
//
// To make golang.org/x/oauth2 send proofs with its token requests, put the
// Transport in the client it uses:
//
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &dpop.Transport{Signer: signer}})
//
// A Transport replaces any DPoP header the caller set and never modifies
// the caller's request. It is safe for concurrent use if Base is.
type Transport struct {
	// Signer makes the proofs and keeps the nonces. Required.
	Signer *Signer
	// Base sends the requests. Default: http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip sends req with a proof, and once more with the server's new
// nonce when the server demands one.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Signer == nil {
		closeRequestBody(req)
		return nil, errors.New("dpop: Transport has no Signer")
	}
	if req.URL == nil {
		closeRequestBody(req)
		return nil, errors.New("dpop: request without URL")
	}
	authority := req.Host
	if authority == "" {
		authority = req.URL.Host
	}
	htu := targetURI(req.URL, authority)
	token := dpopToken(req.Header.Get("Authorization"))
	sent := t.Signer.Nonce(authority)
	resp, err := t.send(req, req.Body, htu, token, sent)
	if err != nil {
		return nil, err
	}
	nonce := t.remember(resp, authority)
	if nonce == "" || nonce == sent || !rewindable(req) || !demandsNonce(resp) {
		return resp, nil
	}
	body := req.Body
	if body != nil && body != http.NoBody {
		if body, err = req.GetBody(); err != nil {
			discard(resp)
			return nil, errors.Join(errors.New("dpop: rewinding the request body for the nonce retry"), err)
		}
	}
	discard(resp)
	if resp, err = t.send(req, body, htu, token, nonce); err != nil {
		return nil, err
	}
	t.remember(resp, authority)
	return resp, nil
}

// remember keeps the response's DPoP-Nonce for authority and returns it,
// or "" when there is none or it is not valid RFC 9449 §8 syntax.
func (t *Transport) remember(resp *http.Response, authority string) string {
	nonce := resp.Header.Get("DPoP-Nonce")
	if !validNonce(nonce) {
		return ""
	}
	t.Signer.SetNonce(authority, nonce)
	return nonce
}

// send sends a clone of req with body and a proof carrying nonce.
func (t *Transport) send(req *http.Request, body io.ReadCloser, htu, token, nonce string) (*http.Response, error) {
	proof, err := t.Signer.ProofWithNonce(req.Method, htu, token, nonce)
	if err != nil {
		if body != nil {
			_ = body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("DPoP", proof)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// targetURI returns the htu of a request: u on authority, without userinfo,
// query and fragment (RFC 9449 §4.2).
func targetURI(u *url.URL, authority string) string {
	v := url.URL{Scheme: u.Scheme, Host: authority, Path: u.Path, RawPath: u.RawPath}
	if v.Path == "" {
		v.Path = "/" // the request target of an empty path (RFC 9110 §4.2.3)
	}
	return v.String()
}

// dpopToken returns the token of an "Authorization: DPoP <token>" value, or
// "" for any other scheme. The scheme is case-insensitive (RFC 9110 §11.1).
func dpopToken(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "DPoP") {
		return ""
	}
	return strings.TrimSpace(token)
}

// rewindable reports whether req can be sent again.
func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// demandsNonce reports whether resp is a use_dpop_nonce error: a token
// endpoint's 400 with that error in its JSON body (RFC 9449 §8), or a
// resource server's 401 with it in WWW-Authenticate (RFC 9449 §9). It reads
// at most maxErrorBody bytes of a 400 and puts back an equivalent body.
func demandsNonce(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, v := range resp.Header.Values("WWW-Authenticate") {
			if challengesNonce(v) {
				return true
			}
		}
		return false
	case http.StatusBadRequest:
		if resp.Body == nil || resp.Body == http.NoBody {
			return false
		}
		head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
		return err == nil && len(head) <= maxErrorBody && isNonceError(head)
	default:
		return false
	}
}

// replayBody is a response body whose start was read already.
type replayBody struct {
	io.Reader
	io.Closer
}

// isNonceError reports whether body is an OAuth error response (RFC 6749
// §5.2) whose error is use_dpop_nonce.
func isNonceError(body []byte) bool {
	found := false
	err := parseJSONObject(string(body), func(name string, v strictjson.Value) error {
		if name == "error" {
			s, ok := v.Str()
			found = ok && s == "use_dpop_nonce"
		}
		return nil
	})
	return err == nil && found
}

// challengesNonce reports whether a WWW-Authenticate value has the
// auth-param error="use_dpop_nonce" (RFC 9449 §9), quoted or as a token,
// outside any quoted string; a parameter name is case-insensitive (RFC 9110
// §11.2).
func challengesNonce(h string) bool {
	const name, value = "error=", "use_dpop_nonce"
	quoted := false
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case quoted && c == '\\':
			i++ // RFC 9110 §5.6.4: a quoted-pair
		case c == '"':
			quoted = !quoted
		case quoted:
		case (i == 0 || isParamSep(h[i-1])) && len(h)-i >= len(name) && strings.EqualFold(h[i:i+len(name)], name):
			rest := h[i+len(name):]
			if strings.HasPrefix(rest, `"`+value+`"`) {
				return true
			}
			if v, ok := strings.CutPrefix(rest, value); ok && (v == "" || isParamSep(v[0])) {
				return true
			}
		}
	}
	return false
}

// isParamSep reports whether c may come before or after an auth-param.
func isParamSep(c byte) bool { return c == ' ' || c == '\t' || c == ',' }

// discard reads a little of a response body, so that its connection can be
// reused, and closes it.
func discard(resp *http.Response) {
	if resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}
}

// closeRequestBody closes req's body: a RoundTripper must, even on error.
func closeRequestBody(req *http.Request) {
	if req != nil && req.Body != nil {
		_ = req.Body.Close()
	}
}
