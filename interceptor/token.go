package interceptor

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
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
	// Whatever the client, a redirect is followed only to a URL JWKSURL
	// itself could be.
	HTTPClient *http.Client
	// InsecureHTTPJWKS accepts a JWKSURL (and redirects) with the http
	// scheme on a host that is not a loopback address. Default false:
	// NewJWTVerifier refuses it. Whoever can answer a plain HTTP fetch of
	// the issuer's keys can sign every token; prefer https, or JWKS or
	// JWKSFile with keys delivered by your deployment.
	InsecureHTTPJWKS bool
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
		if err := CheckJWKSURL(cfg.JWKSURL, cfg.InsecureHTTPJWKS); err != nil {
			return nil, fmt.Errorf("interceptor: JWTConfig.JWKSURL: %w", err)
		}
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
	client := jwksClient(v.cfg.HTTPClient, v.cfg.InsecureHTTPJWKS)
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
	// The client goes with the resource: jwk.Cache fetches a resource with
	// its own default client otherwise, whatever httprc's client is.
	if err := cache.Register(regCtx, v.cfg.JWKSURL, jwk.WithHTTPClient(client),
		jwk.WithMinInterval(minR), jwk.WithMaxInterval(maxR), jwk.WithWaitReady(true)); err != nil {
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
// allowlist, the signature with the header's algorithm and the issuer keys
// that may make it (keyOptions), then iss, aud, exp, nbf and iat, and the
// claims the Guard reads (sub, scopes, auth_time, cnf: checkClaims), and
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
	keys, err := v.keyOptions(hdr)
	if err != nil {
		return nil, &TokenError{Reason: ReasonTokenBadSignature, Err: err}
	}
	t, err := jwt.ParseString(token, append(keys, jwt.WithValidate(false))...)
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
	tok, err := tokenFromJWT(t)
	if err != nil {
		return nil, err
	}
	if err := checkClaims(tok, v.cfg.Clock(), v.cfg.Leeway); err != nil {
		return nil, err
	}
	return tok, nil
}

// keyOptions returns the issuer's keys that may verify a token whose
// protected header is hdr, each with the header's algorithm (already on
// the allowlist): jwx would verify with a key's own "alg" when it has one,
// whatever the header says, so that a token labelled PS256 but signed
// RS256 passed an allowlist of PS256 against keys published as RS256, and
// a key published as RS512 accepted RS512 signatures labelled RS256. A key
// is used only when its "alg" is absent or the header's (RFC 7517 §4.4),
// its type is the one the algorithm is for (RFC 8725 §3.1), its "use" is
// absent or "sig", and, when the header names a kid that the set holds, it
// has that kid (RFC 7515 §4.1.4).
func (v *JWTVerifier) keyOptions(hdr jws.Headers) ([]jwt.ParseOption, error) {
	alg, _ := hdr.Algorithm()
	kty, ok := keyTypeFor(alg)
	if !ok {
		return nil, fmt.Errorf("alg %q has no key type", alg.String())
	}
	kid, hasKid := hdr.KeyID()
	if hasKid {
		if _, found := v.keys.LookupKeyID(kid); !found {
			hasKid = false // no key has it: try every key, as before
		}
	}
	var opts []jwt.ParseOption
	var skipped []string
	for i := 0; i < v.keys.Len(); i++ {
		k, _ := v.keys.Key(i)
		if id, _ := k.KeyID(); hasKid && id != kid {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
			continue
		}
		if k.KeyType() != kty {
			continue
		}
		if ka, ok := k.Algorithm(); ok && ka.String() != alg.String() {
			id, _ := k.KeyID()
			skipped = append(skipped, fmt.Sprintf("%q (%s)", id, ka.String()))
			continue
		}
		opts = append(opts, jwt.WithKey(alg, k))
	}
	if len(opts) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("the token says alg %s; the issuer publishes key %s for another algorithm", alg.String(), strings.Join(skipped, ", "))
		}
		return nil, fmt.Errorf("no key of the issuer is a %s key for alg %s", kty.String(), alg.String())
	}
	return opts, nil
}

// keyTypeFor is the JWK key type an asymmetric JWS algorithm is made with
// (RFC 7518 §3.1, RFC 8037 §3.1).
func keyTypeFor(alg jwa.SignatureAlgorithm) (jwa.KeyType, bool) {
	name := alg.String()
	switch {
	case strings.HasPrefix(name, "RS"), strings.HasPrefix(name, "PS"):
		return jwa.RSA(), true
	case strings.HasPrefix(name, "ES"):
		return jwa.EC(), true
	case name == "EdDSA", name == "Ed25519":
		return jwa.OKP(), true
	}
	return jwa.KeyType{}, false
}

// clip quotes a value from a token for an error, at most 128 bytes of it.
func clip(s string) string {
	if len(s) > 128 {
		return fmt.Sprintf("%q…", s[:128])
	}
	return fmt.Sprintf("%q", s)
}

// opaqueToken is the detail of a refusal of a token without a dot.
const opaqueToken = "an opaque (non-JWT) access token: the authorization server issued a reference token, " +
	"which only it can read; ask it for a JWT access token (RFC 9068) for this resource server's audience: " +
	"the resource parameter (RFC 8707), Auth0's audience parameter, an audience mapper (Keycloak), " +
	"a custom authorization server (Okta), the API's scope (Entra ID); docs/PROVIDERS.md"

// segmentCount refuses a token that does not have the three segments of a
// compact JWS, saying what it is instead when that is clear.
func segmentCount(n int) error {
	switch n {
	case 3:
		return nil
	case 1:
		// The usual cause: a provider asked for no audience, or for one
		// it does not know, issues a reference token that only its
		// introspection endpoint can read.
		return errors.New(opaqueToken)
	case 5:
		return errors.New("an encrypted JWT (JWE, 5 segments), not a signed one: configure the authorization server to issue signed (JWS) access tokens for this resource server")
	}
	return fmt.Errorf("%d segments, want 3", n)
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
	if err := segmentCount(len(segs)); err != nil {
		return err
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

// tokenFromJWT copies the claims the Guard and handlers use, refusing
// those of the wrong JSON type; checkClaims checks their values.
func tokenFromJWT(t jwt.Token) (*Token, error) {
	out := &Token{Claims: map[string]any{}}
	out.Subject, _ = t.Subject()
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
	// (Entra ID) or an array of strings (Okta). With both, scope alone
	// counts. Every scope token is checked against RFC 6749 §3.3 by
	// checkClaims.
	if v, present := out.Claims["scope"]; present {
		s, ok := v.(string)
		if !ok {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("scope is not a string")}
		}
		out.Scopes = splitScope(s)
	} else if v, present := out.Claims["scp"]; present {
		switch s := v.(type) {
		case string:
			out.Scopes = splitScope(s)
		case []any:
			for _, e := range s {
				str, ok := e.(string)
				if !ok {
					return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("scp is not an array of strings")}
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
		at, err := numericDate(v)
		if err != nil {
			return nil, &TokenError{Reason: ReasonTokenInvalidClaims, Err: fmt.Errorf("auth_time %w", err)}
		}
		out.AuthTime = at
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

// splitScope splits a scope string at its spaces (RFC 6749 §3.3: scope
// tokens separated by SP); runs of spaces, and spaces at either end, make
// no empty token. Any other white space stays inside a token, for
// CheckScopes to refuse.
func splitScope(s string) []string {
	var out []string
	for tok := range strings.SplitSeq(s, " ") {
		if tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// maxNumericDate bounds the NumericDates read from claims: 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// numericDate reads a NumericDate claim (RFC 7519 §2: seconds since the
// epoch, possibly fractional) that JSON decoding made a float64. Values
// outside 0 … year 9999, and anything but a number, are refused: a float
// beyond the range of int64 converts to an unspecified time.
func numericDate(v any) (time.Time, error) {
	n, ok := v.(float64)
	switch {
	case !ok:
		return time.Time{}, errors.New("is not a number")
	case math.IsNaN(n) || n < 0 || n > maxNumericDate:
		return time.Time{}, errors.New("is outside 0 … 253402300799 (year 9999)")
	}
	sec := math.Floor(n)
	return time.Unix(int64(sec), int64((n-sec)*1e9)), nil
}

// cnfMethods are the confirmation methods (RFC 7800 §3.1) the Guard can
// check: only the DPoP key thumbprint, jkt (RFC 9449 §6.1).
var cnfMethods = map[string]bool{"jkt": true}

// checkClaims applies the checks the Guard makes on every verified token,
// whatever its TokenVerifier: a subject a handler may see (CheckSubject),
// scope tokens of RFC 6749 §3.3 (CheckScopes), an auth_time that is not
// after now beyond leeway, and a cnf ("cnf" in Claims, when a verifier
// passes it on) whose confirmation methods are all ones the Guard checks.
// A token bound by another method (an mTLS certificate, x5t#S256, RFC 8705
// §3.1; a jwk, RFC 7800 §3.2) would otherwise pass as a bearer token.
func checkClaims(tok *Token, now time.Time, leeway time.Duration) *TokenError {
	if err := CheckSubject(tok.Subject); err != nil {
		return &TokenError{Reason: ReasonTokenInvalidClaims, Err: err}
	}
	if err := CheckScopes(tok.Scopes); err != nil {
		return &TokenError{Reason: ReasonTokenInvalidClaims, Err: err}
	}
	if !tok.AuthTime.IsZero() && tok.AuthTime.After(now.Add(leeway)) {
		return &TokenError{Reason: ReasonTokenInvalidClaims, Err: fmt.Errorf("auth_time %s is in the future",
			tok.AuthTime.UTC().Format(time.RFC3339))}
	}
	if v, present := tok.Claims["cnf"]; present {
		cnf, ok := v.(map[string]any)
		if !ok {
			return &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("cnf is not an object")}
		}
		if len(cnf) == 0 {
			return &TokenError{Reason: ReasonTokenInvalidClaims, Err: errors.New("cnf holds no confirmation method")}
		}
		for name := range cnf {
			if !cnfMethods[name] {
				return &TokenError{Reason: ReasonTokenInvalidClaims, Err: fmt.Errorf("cnf holds the confirmation method %s, which this server cannot check (only jkt, RFC 9449)", clip(name))}
			}
		}
	}
	return nil
}

// CheckScopes reports a scope a handler, or a backend behind the gateway,
// must not see: an empty one, or one with a character outside RFC 6749
// §3.3's scope-token (%x21 / %x23-5B / %x5D-7E: printable ASCII but space,
// '"' and '\'). A line break or another space (\r, \v, \f, U+0085,
// U+00A0) would make one scope several to a reader that splits a scope
// string on white space, such as a backend reading the gateway
// assertion's "scope". The Guard applies it to every TokenVerifier's
// result.
func CheckScopes(scopes []string) error {
	for _, s := range scopes {
		if s == "" {
			return errors.New("an empty scope")
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
				return fmt.Errorf("scope %s holds the byte %#02x, outside RFC 6749 §3.3", clip(s), c)
			}
		}
	}
	return nil
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

// verify returns the cached token or verifies, checks (checkClaims) and
// caches it. Tokens without an expiry are never cached. A cached token was
// checked once: none of the checks can fail later (an auth_time not ahead
// of now stays so).
func (c *tokenCache) verify(ctx context.Context, v TokenVerifier, token string, now time.Time, leeway time.Duration) (*Token, error) {
	if c == nil {
		return verifyChecked(ctx, v, token, now, leeway)
	}
	key := maphash.String(c.seed, token)
	if e, ok := c.lru.Get(key); ok && e.raw == token {
		if now.Before(e.tok.Expiry) {
			return e.tok, nil
		}
		c.lru.Remove(key)
	}
	t, err := verifyChecked(ctx, v, token, now, leeway)
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

// verifyChecked verifies token with v and applies checkClaims to what v
// returns, whatever the verifier: no anonymous or unbounded subject, no
// scope a backend could read as two, no auth_time to come, no confirmation
// method left unchecked.
func verifyChecked(ctx context.Context, v TokenVerifier, token string, now time.Time, leeway time.Duration) (*Token, error) {
	t, err := v.VerifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if terr := checkClaims(t, now, leeway); terr != nil {
		return nil, terr
	}
	return t, nil
}
