package interceptor

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// Token is a verified access token, as the handler and the step-up layer see
// it. It never holds the token string itself.
type Token struct {
	// Subject is the "sub" claim.
	Subject string
	// ID is the "jti" claim, used in audit events.
	ID string
	// Issuer is the "iss" claim.
	Issuer string
	// Audience is the "aud" claim.
	Audience []string
	// ClientID is the "client_id" claim (RFC 9068 §2.2), or when absent
	// "azp" (OIDC: Keycloak, Auth0, Entra ID v2), or "appid" (Entra ID v1).
	ClientID string
	// Scopes are the space-separated "scope" claim, split; when it is
	// absent, "scp" as a space-separated string (Entra ID) or an array
	// (Okta).
	Scopes []string
	// IssuedAt, NotBefore and Expiry are "iat", "nbf" and "exp"; zero when absent.
	IssuedAt, NotBefore, Expiry time.Time
	// ACR and AuthTime are "acr" and "auth_time" (RFC 9470), zero when absent.
	ACR      string
	AuthTime time.Time
	// JKT is the "cnf"."jkt" confirmation (RFC 9449 §6.1): the thumbprint of
	// the key the token is bound to. Empty for a bearer token.
	JKT string
	// Claims holds every claim, for handlers that need more.
	Claims map[string]any
}

// HasScope reports whether the token carries scope s.
func (t *Token) HasScope(s string) bool { return slices.Contains(t.Scopes, s) }

// TokenVerifier verifies an access token and returns its claims. Plug in an
// implementation for opaque tokens (RFC 7662 introspection) or another
// format; NewJWTVerifier covers RFC 9068 JWT access tokens.
//
// A refusal should be a *TokenError so that its reason reaches the audit log.
// The Guard checks exp and nbf again on every call, including cached tokens.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (*Token, error)
}

// TokenVerifierFunc adapts a function to TokenVerifier.
type TokenVerifierFunc func(ctx context.Context, token string) (*Token, error)

// VerifyToken calls f.
func (f TokenVerifierFunc) VerifyToken(ctx context.Context, token string) (*Token, error) {
	return f(ctx, token)
}

// TokenError is a refused access token with its stable reason.
type TokenError struct {
	Reason Reason
	Err    error
}

// Error returns "interceptor: <reason>: <cause>".
func (e *TokenError) Error() string {
	if e.Err == nil {
		return "interceptor: " + string(e.Reason)
	}
	return "interceptor: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// JWTConfig configures NewJWTVerifier for RFC 9068 JWT access tokens.
type JWTConfig struct {
	// Issuer is the required "iss". Required.
	Issuer string
	// Audience is a value "aud" must contain: this resource server. Required.
	Audience string
	// JWKS is the issuer's JWK Set document: the JSON it serves at its
	// jwks_uri (RFC 7517 §5), parsed at construction. Exactly one of JWKS,
	// JWKSFile, JWKSURL and Keys must be set. NewJWTVerifier refuses a
	// document that does not parse, holds no key, or holds a private or
	// symmetric key.
	JWKS []byte
	// Keys are the issuer's public keys, as a jwx key set.
	//
	// Deprecated: use JWKS; Keys goes in the next release.
	Keys jwk.Set
	// JWKSFile is the path of a JWK Set document, read once at
	// construction and checked as JWKS is.
	JWKSFile string
	// JWKSURL is fetched at construction (the first fetch must succeed
	// within HTTPClient's timeout, else NewJWTVerifier fails) and refreshed
	// in the background (jwk.Cache), between JWKSMinRefresh and
	// JWKSMaxRefresh.
	JWKSURL string
	// JWKSMinRefresh and JWKSMaxRefresh bound the refresh interval of
	// JWKSURL. Defaults: 5 minutes and 1 hour.
	JWKSMinRefresh, JWKSMaxRefresh time.Duration
	// HTTPClient fetches JWKSURL. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30 s;
	// at most 5 minutes.
	Leeway time.Duration
	// Algorithms are the accepted signature algorithms. Default: RS256,
	// PS256, ES256, ES384, EdDSA. HMAC and "none" are always refused.
	Algorithms []string
	// AllowUntypedJWT accepts tokens whose "typ" header is "JWT" or absent.
	// Default false: RFC 9068 §4 requires "at+jwt" (or "application/at+jwt"),
	// which keeps ID tokens and other JWTs from being used as access tokens.
	AllowUntypedJWT bool
	// Type, when set, is the one "typ" accepted instead of at+jwt (compared
	// case-insensitively, with or without the "application/" prefix): a
	// verifier of another kind of JWT, such as the gateway's identity
	// assertions (stepup-id+jwt), refuses access tokens and the reverse.
	// AllowUntypedJWT does not apply to it.
	Type string
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// JWTVerifier verifies RFC 9068 JWT access tokens with jwx v3.
type JWTVerifier struct {
	cfg      JWTConfig
	keys     jwk.Set
	algs     []jwa.SignatureAlgorithm
	cache    *jwk.Cache
	shutdown context.CancelFunc
}

var defaultTokenAlgorithms = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

// NewJWTVerifier checks the configuration, loads the keys (reading the file
// or fetching the URL once) and returns a verifier. Close stops the
// background refresh of JWKSURL.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("interceptor: JWTConfig needs Issuer and Audience")
	}
	sources := 0
	for _, set := range []bool{cfg.JWKS != nil, cfg.JWKSFile != "", cfg.JWKSURL != "", cfg.Keys != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("interceptor: JWTConfig needs exactly one of JWKS, JWKSFile, JWKSURL and Keys")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("interceptor: JWTConfig.Leeway %s is outside 0..5m", cfg.Leeway)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = defaultTokenAlgorithms
	}
	v := &JWTVerifier{cfg: cfg}
	for _, name := range cfg.Algorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(name)
		if !ok || name == "none" || strings.HasPrefix(name, "HS") {
			return nil, fmt.Errorf("interceptor: JWTConfig.Algorithms: %q is not an accepted asymmetric algorithm", name)
		}
		v.algs = append(v.algs, alg)
	}
	switch {
	case cfg.Keys != nil:
		v.keys = cfg.Keys
	case cfg.JWKS != nil:
		set, err := jwk.Parse(cfg.JWKS)
		if err != nil {
			return nil, fmt.Errorf("interceptor: JWTConfig.JWKS is not a JWK Set: %w", err)
		}
		v.keys = set
	case cfg.JWKSFile != "":
		set, err := jwk.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("interceptor: reading JWKS %s: %w", cfg.JWKSFile, err)
		}
		v.keys = set
	default:
		if err := v.startCache(); err != nil {
			return nil, err
		}
	}
	if err := checkKeySet(v.keys); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// startCache registers JWKSURL with a background-refreshing jwk.Cache and
// waits for the first fetch, so that an unreachable URL fails construction.
func (v *JWTVerifier) startCache() error {
	minR, maxR := v.cfg.JWKSMinRefresh, v.cfg.JWKSMaxRefresh
	if minR == 0 {
		minR = 5 * time.Minute
	}
	if maxR == 0 {
		maxR = time.Hour
	}
	client := v.cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cache, err := jwk.NewCache(ctx, httprc.NewClient(httprc.WithHTTPClient(client)))
	if err != nil {
		cancel()
		return fmt.Errorf("interceptor: JWKS cache: %w", err)
	}
	v.cache, v.shutdown = cache, cancel
	// The first fetch must succeed within the client's timeout (or 10 s):
	// an unreachable JWKS fails construction instead of hanging it.
	wait := client.Timeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	regCtx, regCancel := context.WithTimeout(ctx, wait)
	defer regCancel()
	if err := cache.Register(regCtx, v.cfg.JWKSURL, jwk.WithMinInterval(minR), jwk.WithMaxInterval(maxR), jwk.WithWaitReady(true)); err != nil {
		v.Close()
		return fmt.Errorf("interceptor: fetching JWKS %s: %w", v.cfg.JWKSURL, err)
	}
	set, err := cache.CachedSet(v.cfg.JWKSURL)
	if err != nil {
		v.Close()
		return fmt.Errorf("interceptor: JWKS %s: %w", v.cfg.JWKSURL, err)
	}
	v.keys = set
	return nil
}

// checkKeySet refuses key sets holding symmetric or private keys: an
// issuer's JWKS publishes public keys only (RFC 8725 §3.1, key confusion).
func checkKeySet(set jwk.Set) error {
	if set.Len() == 0 {
		return errors.New("interceptor: the JWKS holds no key")
	}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if k.KeyType() == jwa.OctetSeq() {
			return errors.New("interceptor: the JWKS holds a symmetric (oct) key; access tokens must be verified with public keys")
		}
		if isPrivate, err := jwk.IsPrivateKey(k); err == nil && isPrivate {
			return errors.New("interceptor: the JWKS holds a private key; publish public keys only")
		}
	}
	return nil
}

// Close stops the background JWKS refresh, if any.
func (v *JWTVerifier) Close() {
	if v.cache != nil {
		_ = v.cache.Shutdown(context.Background())
	}
	if v.shutdown != nil {
		v.shutdown()
	}
}

// VerifyToken verifies the typ header and the algorithm against the
// allowlist, the signature with the issuer's keys (by kid; a key without an
// "alg" member accepts only the algorithms of its own key type, so an RSA or
// EC key never verifies an HMAC), then iss, aud, exp, nbf and iat, and
// returns the claims.
func (v *JWTVerifier) VerifyToken(ctx context.Context, token string) (*Token, error) {
	if err := checkCanonicalJWS(token); err != nil {
		return nil, &TokenError{Reason: ReasonTokenMalformed, Err: err}
	}
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, &TokenError{Reason: ReasonTokenMalformed, Err: err}
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if err := v.checkHeader(hdr); err != nil {
		return nil, err
	}
	t, err := jwt.ParseString(token,
		jwt.WithKeySet(v.keys, jws.WithInferAlgorithmFromKey(true), jws.WithRequireKid(false), jws.WithUseDefault(true)),
		jwt.WithValidate(false))
	if err != nil {
		return nil, &TokenError{Reason: ReasonTokenBadSignature, Err: err}
	}
	if err := jwt.Validate(t,
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		jwt.WithClock(jwt.ClockFunc(v.cfg.Clock)),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("sub"),
	); err != nil {
		reason := validationReason(err)
		// The signature verified: name what the token says against what
		// this server expects, for the audit event's detail.
		switch reason {
		case ReasonTokenWrongIssuer:
			iss, _ := t.Issuer()
			err = fmt.Errorf("%w: iss %s, this server expects %q", err, clip(iss), v.cfg.Issuer)
		case ReasonTokenWrongAudience:
			aud, _ := t.Audience()
			err = fmt.Errorf("%w: aud %s, this server expects %q", err, clip(strings.Join(aud, " ")), v.cfg.Audience)
		}
		return nil, &TokenError{Reason: reason, Err: err}
	}
	return tokenFromJWT(t)
}

// clip quotes a value from a token for an error, at most 128 bytes of it.
func clip(s string) string {
	if len(s) > 128 {
		return fmt.Sprintf("%q…", s[:128])
	}
	return fmt.Sprintf("%q", s)
}

// checkCanonicalJWS accepts exactly one spelling of a compact JWS: three
// segments of unpadded base64url with zero trailing bits (RFC 7515 §2,
// RFC 4648 §3.5), a header that is exactly one JSON object and claims
// that are one JSON object, both without duplicate member names. Lenient
// decoders would accept "=" padding, "+" and "/", other trailing bits, or
// line breaks (encoding/base64 skips CR and LF even in strict mode), and
// jwx accepts a header with white space before it or bytes after it,
// verifying the signature over the header as it read it: each would give
// one token several accepted forms.
func checkCanonicalJWS(token string) error {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return fmt.Errorf("%d segments, want 3", len(segs))
	}
	for i, seg := range segs {
		// One spelling per segment, as dpop and challenge read theirs.
		raw, err := base64url.DecodeString(seg)
		if err != nil {
			return fmt.Errorf("segment %d: %w", i+1, err)
		}
		switch i {
		case 0:
			// jwx reads the header leniently and verifies the signature
			// over it as it read it: white space before the object, or
			// anything after it, would be another accepted spelling.
			if len(raw) == 0 || raw[0] != '{' || raw[len(raw)-1] != '}' {
				return errors.New("header is not exactly one JSON object")
			}
			fallthrough
		case 1:
			// RFC 7515 §4, RFC 8725 §3.4: no duplicate member names, no
			// JSON that two parsers could read differently.
			if err := strictjson.ParseObject(string(raw), nil); err != nil {
				return fmt.Errorf("segment %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// checkHeader applies the header rules before any key is touched: an
// accepted algorithm, the RFC 9068 type, and no key-carrying headers.
func (v *JWTVerifier) checkHeader(hdr jws.Headers) error {
	alg, ok := hdr.Algorithm()
	if !ok || !slices.Contains(v.algs, alg) {
		return &TokenError{Reason: ReasonTokenBadAlgorithm, Err: fmt.Errorf("alg %q", alg.String())}
	}
	typ, _ := hdr.Type()
	if want := v.cfg.Type; want != "" {
		if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), want) {
			return &TokenError{Reason: ReasonTokenBadType, Err: fmt.Errorf("typ %q, want %s", typ, want)}
		}
		return checkNoKeyHeaders(hdr)
	}
	switch strings.ToLower(typ) {
	case "at+jwt", "application/at+jwt":
	case "jwt", "":
		if !v.cfg.AllowUntypedJWT {
			return &TokenError{Reason: ReasonTokenBadType, Err: fmt.Errorf("typ %q, want at+jwt", typ)}
		}
	default:
		return &TokenError{Reason: ReasonTokenBadType, Err: fmt.Errorf("typ %q, want at+jwt", typ)}
	}
	return checkNoKeyHeaders(hdr)
}

// checkNoKeyHeaders refuses key-carrying headers: keys are never taken from
// the token itself (RFC 8725 §3.10); a jwk, jku or x5u header would only be
// ignored, so refuse it loudly.
func checkNoKeyHeaders(hdr jws.Headers) error {
	for _, name := range []string{"jwk", "jku", "x5u", "x5c", "crit"} {
		if hdr.Has(name) {
			return &TokenError{Reason: ReasonTokenBadHeader, Err: fmt.Errorf("header %q is not accepted", name)}
		}
	}
	return nil
}

func validationReason(err error) Reason {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return ReasonTokenExpired
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return ReasonTokenNotYetValid
	case errors.Is(err, jwt.InvalidIssuerError()):
		return ReasonTokenWrongIssuer
	case errors.Is(err, jwt.InvalidAudienceError()):
		return ReasonTokenWrongAudience
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return ReasonTokenNotYetValid
	default:
		return ReasonTokenInvalidClaims
	}
}

// tokenFromJWT copies the claims the Guard and handlers use.
func tokenFromJWT(t jwt.Token) (*Token, error) {
	out := &Token{Claims: map[string]any{}}
	out.Subject, _ = t.Subject()
	if err := CheckSubject(out.Subject); err != nil {
		return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: err}
	}
	out.ID, _ = t.JwtID()
	out.Issuer, _ = t.Issuer()
	out.Audience, _ = t.Audience()
	out.IssuedAt, _ = t.IssuedAt()
	out.NotBefore, _ = t.NotBefore()
	out.Expiry, _ = t.Expiration()
	for _, k := range t.Keys() {
		var v any
		if err := t.Get(k, &v); err == nil {
			out.Claims[k] = v
		}
	}
	var ok bool
	// The client: RFC 9068's client_id, else the OIDC azp (Keycloak, Auth0,
	// Entra ID v2), else Entra ID v1's appid.
	for _, name := range []string{"client_id", "azp", "appid"} {
		if v, present := out.Claims[name]; present {
			if out.ClientID, ok = v.(string); !ok {
				return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: fmt.Errorf("%s is not a string", name)}
			}
			break
		}
	}
	// The scopes: RFC 9068's space-separated scope, else scp, a string
	// (Entra ID) or an array of strings (Okta). With both, scope alone counts.
	if v, present := out.Claims["scope"]; present {
		s, ok := v.(string)
		if !ok {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("scope is not a string")}
		}
		out.Scopes = strings.Fields(s)
	} else if v, present := out.Claims["scp"]; present {
		switch s := v.(type) {
		case string:
			out.Scopes = strings.Fields(s)
		case []any:
			for _, e := range s {
				str, ok := e.(string)
				if !ok || str == "" || strings.ContainsAny(str, " \t") {
					return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("scp is not an array of scope names")}
				}
				out.Scopes = append(out.Scopes, str)
			}
		default:
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("scp is neither a string nor an array")}
		}
	}
	if v, present := out.Claims["acr"]; present {
		if out.ACR, ok = v.(string); !ok {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("acr is not a string")}
		}
	}
	if v, present := out.Claims["auth_time"]; present {
		n, ok := v.(float64)
		if !ok || n < 0 {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("auth_time is not a number")}
		}
		out.AuthTime = time.Unix(int64(n), 0)
	}
	if v, present := out.Claims["cnf"]; present {
		cnf, ok := v.(map[string]any)
		if !ok {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("cnf is not an object")}
		}
		if j, present := cnf["jkt"]; present {
			if out.JKT, ok = j.(string); !ok || out.JKT == "" {
				return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("cnf.jkt is not a thumbprint")}
			}
		}
	}
	return out, nil
}

// MaxSubjectSize bounds the subject of an access token.
const MaxSubjectSize = 1024

// CheckSubject reports a subject a handler must not see: empty (an
// anonymous caller), over MaxSubjectSize bytes, not UTF-8, or holding
// control characters. The Guard applies it to every TokenVerifier's result.
func CheckSubject(sub string) error {
	switch {
	case sub == "":
		return errors.New("empty sub")
	case len(sub) > MaxSubjectSize:
		return fmt.Errorf("sub is %d bytes, limit %d", len(sub), MaxSubjectSize)
	case !utf8.ValidString(sub):
		return errors.New("sub is not UTF-8")
	}
	for _, r := range sub {
		if unicode.IsControl(r) {
			return errors.New("sub holds a control character")
		}
	}
	return nil
}

// tokenCache remembers verified tokens until they expire, so a token
// reused across calls costs one signature check. Entries are found by a
// 64-bit hash of the token under a secret per-cache seed, and a hit is
// confirmed by comparing the whole token: a hash costs a small fraction
// of the SHA-256 this cache used before, and the comparison, which stops
// at the first differing byte, only ever runs against a token with the
// same secret-keyed hash, so its timing tells a caller nothing about the
// tokens held.
type tokenCache struct {
	seed maphash.Seed
	lru  *lru.Cache[uint64, *cachedToken]
}

// cachedToken is a verified token and its claims.
type cachedToken struct {
	raw string
	tok *Token
}

func newTokenCache(size int) (*tokenCache, error) {
	if size <= 0 {
		return nil, nil
	}
	c, err := lru.New[uint64, *cachedToken](size)
	if err != nil {
		return nil, fmt.Errorf("interceptor: token cache: %w", err)
	}
	return &tokenCache{seed: maphash.MakeSeed(), lru: c}, nil
}

// verify returns the cached token or verifies and caches it. Tokens without
// an expiry are never cached.
func (c *tokenCache) verify(ctx context.Context, v TokenVerifier, token string, now time.Time) (*Token, error) {
	if c == nil {
		return v.VerifyToken(ctx, token)
	}
	key := maphash.String(c.seed, token)
	if e, ok := c.lru.Get(key); ok && e.raw == token {
		if now.Before(e.tok.Expiry) {
			return e.tok, nil
		}
		c.lru.Remove(key)
	}
	t, err := v.VerifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if !t.Expiry.IsZero() {
		// A clone: token is part of the call's header value, which the
		// cache must not keep alive.
		c.lru.Add(key, &cachedToken{raw: strings.Clone(token), tok: t})
	}
	return t, nil
}
