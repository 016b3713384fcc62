package interceptor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/internal/base64url"
)

// Issuers is a TokenVerifier for tokens from several issuers (a migration
// between identity providers, or one per tenant): it reads the token's
// unverified "iss" only to pick the JWTVerifier configured for that
// issuer, which then verifies everything, "iss" included. A token from any
// other issuer is TOKEN_WRONG_ISSUER.
type Issuers struct {
	byIssuer map[string]*JWTVerifier
}

// NewIssuers returns a verifier over vs, one per distinct JWTConfig.Issuer.
func NewIssuers(vs ...*JWTVerifier) (*Issuers, error) {
	m := &Issuers{byIssuer: map[string]*JWTVerifier{}}
	for _, v := range vs {
		if v == nil {
			return nil, errors.New("interceptor: NewIssuers: nil verifier")
		}
		if _, dup := m.byIssuer[v.cfg.Issuer]; dup {
			return nil, fmt.Errorf("interceptor: NewIssuers: issuer %q twice", v.cfg.Issuer)
		}
		m.byIssuer[v.cfg.Issuer] = v
	}
	if len(m.byIssuer) == 0 {
		return nil, errors.New("interceptor: NewIssuers: no verifier")
	}
	return m, nil
}

// VerifyToken implements TokenVerifier.
func (m *Issuers) VerifyToken(ctx context.Context, token string) (*Token, error) {
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return nil, &TokenError{Reason: ReasonTokenMalformed, Err: err}
	}
	v, ok := m.byIssuer[iss]
	if !ok {
		return nil, &TokenError{Reason: ReasonTokenWrongIssuer, Err: fmt.Errorf("iss %q is none of the configured issuers", iss)}
	}
	return v.VerifyToken(ctx, token)
}

// maxUnverifiedPayload bounds what is decoded before any signature check.
const maxUnverifiedPayload = 8 << 10

// unverifiedIssuer reads "iss" from a compact JWS's payload, without
// trusting anything else in it.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.SplitN(token, ".", 4)
	if len(parts) != 3 {
		return "", segmentCount(strings.Count(token, ".") + 1)
	}
	if len(parts[1]) > maxUnverifiedPayload {
		return "", errors.New("payload too large")
	}
	payload, err := base64url.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("payload: %w", err)
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("payload: %w", err)
	}
	return c.Issuer, nil
}

// DiscoverJWKS reads the OpenID Connect discovery document of issuer
// ({issuer}/.well-known/openid-configuration), checks that it names the
// same issuer (OpenID Connect Discovery §4.3: a document that names another
// is refused), and returns its jwks_uri, for JWTConfig.JWKSURL. client nil
// is a client with a 10 s timeout. The issuer, the jwks_uri and every
// redirect must be https (http only for a loopback host, in tests), the
// rule of CheckJWKSURL without its insecure option: a JWKSURL from
// discovery is one NewJWTVerifier accepts without InsecureHTTPJWKS.
func DiscoverJWKS(ctx context.Context, issuer string, client *http.Client) (string, error) {
	if err := CheckJWKSURL(issuer, false); err != nil {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: issuer: %w", err)
	}
	client = jwksClient(client, false)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: %s answered %s", req.URL, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: %s: %w", req.URL, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: the document names issuer %q, not %q", doc.Issuer, issuer)
	}
	if err := CheckJWKSURL(doc.JWKSURI, false); err != nil {
		return "", fmt.Errorf("interceptor: DiscoverJWKS: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// CheckJWKSURL reports a URL that keys must not be fetched from: not an
// absolute http(s) URL with a host, or http on a host that is not a
// loopback address (localhost, 127.0.0.0/8, ::1) unless insecureHTTP. The
// keys decide who is who: over plain HTTP, whoever answers the fetch
// (anyone on the path, a poisoned DNS) signs every token. NewJWTVerifier
// applies it to JWTConfig.JWKSURL, DiscoverJWKS to the issuer and the
// jwks_uri, and both to every redirect.
func CheckJWKSURL(raw string, insecureHTTP bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("%q holds user information", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme != "http":
		return fmt.Errorf("%q is not an https URL", raw)
	case insecureHTTP || isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q is plain http on a host that is not a loopback address: use https (or a key file); InsecureHTTPJWKS accepts it", raw)
}

// jwksClient returns client (nil: one with a 10 s timeout), or a copy of
// it, whose redirects are followed only to URLs CheckJWKSURL accepts (and
// at most 10, http.Client's own default).
func jwksClient(client *http.Client, insecureHTTP bool) *http.Client {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckJWKSURL(req.URL.String(), insecureHTTP); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// isLoopback reports a host name that reaches this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
