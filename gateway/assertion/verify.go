package assertion

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// VerifierConfig configures NewVerifier, in a backend behind the gateway.
type VerifierConfig struct {
	// Issuer and Audience are the required "iss" and the "aud" this
	// backend answers to: the gateway's assertion.issuer and
	// assertion.audience. Required.
	Issuer, Audience string
	// The gateway's public keys, exactly one of: JWKS, the JWK Set
	// document (Signer.JWKS, Gateway.JWKS); JWKSFile, a file holding it
	// (preferred: nothing to fetch, nothing to spoof); JWKSURL, the
	// gateway's jwks_listen, https://…/.well-known/jwks.json (fetched at
	// construction and refreshed in the background).
	JWKS     []byte
	JWKSFile string
	JWKSURL  string
	// HTTPClient fetches JWKSURL: one that trusts the CA of the gateway's
	// certificate. Default: a client with a 10 s timeout and the system's
	// roots.
	HTTPClient *http.Client
	// InsecureHTTPJWKS accepts a JWKSURL with the http scheme on a host
	// that is not a loopback address (interceptor.JWTConfig's option of
	// the same name). Default false: whoever answers a plain HTTP fetch
	// can sign assertions this backend trusts.
	InsecureHTTPJWKS bool
	// Leeway is the clock skew tolerated on exp and iat. Default 5 s.
	Leeway time.Duration
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// Verifier verifies assertions in a backend.
type Verifier struct {
	jwt *interceptor.JWTVerifier
}

// NewVerifier checks the configuration and loads the gateway's keys.
// Close stops the refresh of JWKSURL.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	}
	// Checked here too, for an error that names this configuration's fields.
	sources := 0
	for _, set := range []bool{cfg.JWKS != nil, cfg.JWKSFile != "", cfg.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("assertion: VerifierConfig needs exactly one of JWKS, JWKSFile and JWKSURL")
	}
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: cfg.Issuer, Audience: cfg.Audience,
		JWKS: cfg.JWKS, JWKSFile: cfg.JWKSFile, JWKSURL: cfg.JWKSURL,
		HTTPClient: cfg.HTTPClient, InsecureHTTPJWKS: cfg.InsecureHTTPJWKS,
		Leeway: cfg.Leeway, Clock: cfg.Clock,
		Algorithms: []string{"ES256"}, Type: Type,
	})
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	return &Verifier{jwt: v}, nil
}

// Close stops the background refresh of JWKSURL.
func (v *Verifier) Close() { v.jwt.Close() }

// ErrWrongMethod is returned by VerifyCall for an assertion made for
// another method than the one called.
var ErrWrongMethod = errors.New("assertion: made for another method")

// Verify checks an assertion's signature, type, issuer, audience and times,
// and returns what it says.
func (v *Verifier) Verify(ctx context.Context, assertion string) (*Identity, error) {
	t, err := v.jwt.VerifyToken(ctx, assertion)
	if err != nil {
		return nil, err
	}
	id := &Identity{
		Subject: t.Subject, Scopes: t.Scopes, ClientID: t.ClientID, Thumbprint: t.JKT,
		ID: t.ID, IssuedAt: t.IssuedAt, Expiry: t.Expiry,
	}
	id.Method, _ = t.Claims["method"].(string)
	id.TokenID, _ = t.Claims["token_jti"].(string)
	id.Digest, _ = t.Claims["dig"].(string)
	if id.Method == "" || t.Expiry.IsZero() || t.IssuedAt.IsZero() {
		return nil, errors.New("assertion: method, iat and exp are required")
	}
	if t.Expiry.Sub(t.IssuedAt) > MaxTTL {
		return nil, fmt.Errorf("assertion: lifetime %s exceeds %s", t.Expiry.Sub(t.IssuedAt), MaxTTL)
	}
	if su, ok := t.Claims["stepup"].(map[string]any); ok {
		s := &StepUp{}
		s.Via, _ = su["via"].(string)
		s.Factor, _ = su["factor"].(string)
		s.GrantID, _ = su["grant_id"].(string)
		if at, ok := su["auth_time"].(float64); ok {
			s.AuthTime = time.Unix(int64(at), 0)
		}
		id.StepUp = s
	}
	return id, nil
}

// VerifyCall verifies the assertion of an incoming call: exactly one
// stepup-identity value, valid, made for fullMethod.
func (v *Verifier) VerifyCall(ctx context.Context, fullMethod string) (*Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(Metadata)
	if len(vals) != 1 {
		return nil, fmt.Errorf("assertion: %d %s values, want 1", len(vals), Metadata)
	}
	id, err := v.Verify(ctx, vals[0])
	if err != nil {
		return nil, err
	}
	if id.Method != fullMethod {
		return nil, fmt.Errorf("%w: %s, called %s", ErrWrongMethod, id.Method, fullMethod)
	}
	return id, nil
}

// UnaryServerInterceptor returns a unary interceptor for the backend: a call
// without a valid assertion for its method is refused with UNAUTHENTICATED before
// the handler runs; the handler reads the Identity with FromContext. When
// the assertion carries a request digest (a step-up method), the request
// the backend decoded must have that digest (challenge.RequestDigest), or
// the call is refused: it runs only what the gateway checked.
// Methods for which skip returns true (health checks, say) pass without one;
// skip may be nil.
func (v *Verifier) UnaryServerInterceptor(skip func(fullMethod string) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if skip != nil && skip(info.FullMethod) {
			return handler(ctx, req)
		}
		id, err := v.VerifyCall(ctx, info.FullMethod)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, "no valid identity assertion")
		}
		if id.Digest != "" {
			msg, _ := req.(proto.Message)
			if dig, err := challenge.RequestDigest(info.FullMethod, msg); err != nil || dig != id.Digest {
				return nil, status.Error(codes.Unauthenticated, "the request is not the one the gateway checked")
			}
		}
		return handler(NewContext(ctx, id), req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (v *Verifier) StreamServerInterceptor(skip func(fullMethod string) bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if skip != nil && skip(info.FullMethod) {
			return handler(srv, ss)
		}
		id, err := v.VerifyCall(ss.Context(), info.FullMethod)
		if err != nil {
			return status.Error(codes.Unauthenticated, "no valid identity assertion")
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: NewContext(ss.Context(), id)})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
