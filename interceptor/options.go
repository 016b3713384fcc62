package interceptor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/option"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Option configures a Guard. Options report their mistakes from New, every
// one of them joined with errors.Join, before anything is built.
type Option interface {
	applyGuard(*config) error
}

// optionFunc is an Option that only configures a Guard.
type optionFunc func(*config) error

func (f optionFunc) applyGuard(c *config) error { return f(c) }

// ClockOption is the option WithClock returns: it sets the time source of a
// Guard (New) and of a Client (NewClient), so a test clock is given the
// same way to each. It is an Option and a ClientOption.
type ClockOption interface {
	Option
	ClientOption
}

// clockOption is the ClockOption; a nil now is reported by New and NewClient.
type clockOption struct{ option.Clock }

func (o clockOption) applyGuard(c *config) error { return o.Set(&c.now) }

func (o clockOption) applyClient(c *Client) error { return o.Set(&c.now) }

// applyGuardOptions applies opts to the default configuration and returns
// every mistake of the options, alone or in combination, joined: all are
// found before anything is built.
func applyGuardOptions(opts []Option) (config, error) {
	cfg := defaultConfig()
	err := option.Apply("interceptor", "New", opts, func(o Option) error { return o.applyGuard(&cfg) })
	if cfg.tokenRevocation && cfg.revocations == nil && cfg.stepUp == nil {
		err = errors.Join(err, errors.New("interceptor: WithTokenRevocation needs WithStepUp (its store holds the revocations), or use WithTokenRevocationFrom"))
	}
	return cfg, err
}

// WithFiles sets the registry the policies are read from.
// Default: protoregistry.GlobalFiles, where generated code registers itself.
func WithFiles(files *protoregistry.Files) Option {
	return optionFunc(func(c *config) error {
		if files == nil {
			return errors.New("interceptor: WithFiles: nil registry")
		}
		c.files = files
		return nil
	})
}

// WithPolicy sets the policy of a service ("grpc.health.v1.Health") or of
// one method ("/grpc.health.v1.Health/Check") whose .proto file cannot be
// annotated. A method's entry is merged over its service's by the rules of
// annotations (docs/POLICY.md): never weaker than either. New fails when the
// name is not a service or method of the registry (WithFiles), naming the
// closest real one, and when the method or its service carries a stepup
// annotation: a configured policy never competes with one. Default: none,
// policies come from the annotations.
func WithPolicy(name string, p *stepupv1.Policy) Option {
	return optionFunc(func(c *config) error {
		if p == nil {
			return fmt.Errorf("interceptor: WithPolicy(%q): nil policy", name)
		}
		if strings.HasPrefix(name, "/") {
			if _, _, ok := splitFullMethod(name); !ok {
				return fmt.Errorf("interceptor: WithPolicy(%q): not a full method name", name)
			}
		} else if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("interceptor: WithPolicy(%q): not a service name", name)
		}
		c.configured[name] = proto.CloneOf(p)
		return nil
	})
}

// WithInsecureOpenService lets every call to a service through without
// any check: no token, no proof, no step-up. It covers the service's
// methods that the registry does not know too (a proxy forwards calls to
// methods it has no descriptor for), each call audited with reason
// NO_AUTHENTICATION_REQUIRED. For infrastructure services (health, reflection) in
// front of which nothing else can stand. New fails when the service carries
// a stepup annotation or also has a configured policy (WithPolicy). A name
// the registry does not know is accepted: a typo opens nothing. Default:
// no service is open.
func WithInsecureOpenService(service string) Option {
	return optionFunc(func(c *config) error {
		if service == "" || strings.Contains(service, "/") {
			return fmt.Errorf("interceptor: WithInsecureOpenService(%q): not a service name", service)
		}
		c.open[service] = true
		return nil
	})
}

// InfrastructureServices are the gRPC infrastructure services whose
// .proto cannot be annotated and that clients call without credentials:
// health checking and server reflection (v1 and v1alpha).
var InfrastructureServices = []string{
	"grpc.health.v1.Health",
	"grpc.reflection.v1.ServerReflection",
	"grpc.reflection.v1alpha.ServerReflection",
}

// WithInsecureInfrastructure opens InfrastructureServices
// (WithInsecureOpenService each): health checks and reflection need no
// credentials, and WithRequirePolicy still refuses every other method
// without a policy. Each of their calls is audited. Default: they are
// checked as any other service.
func WithInsecureInfrastructure() Option {
	return optionFunc(func(c *config) error {
		for _, s := range InfrastructureServices {
			if err := WithInsecureOpenService(s).applyGuard(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// RevocationChecker reports whether the access token of subject issued at
// issuedAt, bound to the DPoP key jkt ("" for none), was revoked: its
// subject's tokens (tokens) or its key (key). An error refuses the call.
// *challenge.Revocations implements it.
type RevocationChecker interface {
	CredentialsRevoked(ctx context.Context, subject string, issuedAt time.Time, jkt string) (tokens, key bool, err error)
}

// WithTokenRevocationFrom makes the Guard check, on every authenticated
// call and at every stream re-check, whether the token's subject had its
// tokens revoked since the token was issued
// (challenge.Revocations.RevokeTokens, TOKEN_REVOKED), or the DPoP key it
// is bound to was revoked (challenge.Revocations.RevokeKey,
// DPOP_KEY_REVOKED): a revoked token or key stops working on the next call
// on every replica sharing the store r reads, even while the
// verified-token cache holds the token. r is usually a
// challenge.Revocations: the step-up service's (Service.Revocations), or,
// for a Guard without step-up, one over the store the revoking program
// writes to (challenge.NewRevocations). It does not need WithStepUp. It
// costs one store read per call (BenchmarkTokenRevocation). A store failure
// refuses the call (fail closed, STEPUP_STORE_UNAVAILABLE).
//
// A revocation is remembered for challenge.MaxTokenLifetime (24 h) plus 5
// minutes, so that it covers a token until the token expires: tokens whose
// lifetime (exp - iat) is longer, or that have no iat or no exp, are
// refused (TOKEN_LIFETIME_TOO_LONG). An issuer of longer-lived tokens must
// shorten them for revocation to mean anything. Default: no revocation is
// checked.
func WithTokenRevocationFrom(r RevocationChecker) Option {
	return optionFunc(func(c *config) error {
		if r == nil {
			return errors.New("interceptor: WithTokenRevocationFrom: nil RevocationChecker")
		}
		c.tokenRevocation, c.revocations = true, r
		return nil
	})
}

// WithInsecureRequestAuthority accepts, on TLS connections, DPoP proofs
// whose htu names the :authority the client sent, when the DPoP verifier
// has no authorities (dpop.WithAuthorities). By default such calls are
// refused (INTERNAL, reason AUTHORITY_NOT_CONFIGURED), and CheckCoverage
// returns ErrNoAuthorities before serving: the :authority is the client's
// choice, so a proof made for another server that shares this one's keys
// and paths (a staging twin, another tenant) would verify here. Plaintext
// connections (local testing) always check htu against the :authority;
// a server that only ever serves those gives this option to say so.
func WithInsecureRequestAuthority() Option {
	return optionFunc(func(c *config) error {
		c.clientAuthority = true
		return nil
	})
}

// WithRequirePolicy makes the Guard refuse every call to a method that has no
// policy at all (no annotation on the method or its service, none
// configured), with PERMISSION_DENIED and reason POLICY_MISSING.
// Default: such a method gets the baseline policy, a DPoP-bound token and
// nothing more.
func WithRequirePolicy() Option {
	return optionFunc(func(c *config) error {
		c.requirePolicy = true
		return nil
	})
}

// WithTokenVerifier sets how access tokens are verified: NewJWTVerifier for
// RFC 9068 JWTs, or your own (introspection). Required unless every method
// is insecure_no_authentication: there is no default, and New fails
// (ErrNoTokenVerifier) without one.
func WithTokenVerifier(v TokenVerifier) Option {
	return optionFunc(func(c *config) error {
		if v == nil {
			return errors.New("interceptor: WithTokenVerifier: nil verifier")
		}
		c.verifier = v
		return nil
	})
}

// WithDPoP sets the DPoP proof verifier (accepted authorities, algorithms,
// iat window, nonces, replay store). Default: dpop.NewVerifier with the
// Guard's clock, nonces off, an in-process replay store, and no
// authorities, so htu is compared with the :authority the call carries.
// That authority is chosen by the client, so over TLS the Guard refuses
// such calls (AUTHORITY_NOT_CONFIGURED) and CheckCoverage fails
// (ErrNoAuthorities) unless WithInsecureRequestAuthority: list your
// server's names with dpop.WithAuthorities. The name to list is the
// :authority clients send, not the address they dial: grpc-go sends the
// ServerName of its TLS config, without a port, when one is set
// (docs/DPOP.md, "Which authority").
func WithDPoP(v *dpop.Verifier) Option {
	return optionFunc(func(c *config) error {
		if v == nil {
			return errors.New("interceptor: WithDPoP: nil verifier")
		}
		c.dpop = v
		return nil
	})
}

// WithStepUp sets the step-up service that issues and checks challenges and
// grants. Required when any policy has a step_up requirement. Default:
// none, and a method with a step_up requirement is not enforceable
// (Coverage), its calls refused.
func WithStepUp(s *challenge.Service) Option {
	return optionFunc(func(c *config) error {
		if s == nil {
			return errors.New("interceptor: WithStepUp: nil service")
		}
		c.stepUp = s
		return nil
	})
}

// WithAuditSink sets where audit events go. Default: NewSlogSink over
// slog.Default(), so that decisions are never silently dropped.
func WithAuditSink(s AuditSink) Option {
	return optionFunc(func(c *config) error {
		if s == nil {
			return errors.New("interceptor: WithAuditSink: nil sink")
		}
		c.sink = s
		return nil
	})
}

// WithClock sets the time source of a Guard (token times, audit) and of a
// Client (grant expiry): the same option serves New and NewClient. Give the
// same clock to dpop.WithClock and challenge.WithClock. Default time.Now; a
// nil clock is a mistake New and NewClient report.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "interceptor", Now: now}}
}

// WithLeeway sets the clock skew tolerated on the token's exp, nbf and on
// max_token_age. Default 30 s; at most 5 minutes.
func WithLeeway(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("interceptor: WithLeeway(%s): outside 0..5m", d)
		}
		c.leeway = d
		return nil
	})
}

// WithTokenCacheSize sets how many verified tokens are remembered (until
// they expire) so that a token reused across calls is verified once; each
// entry keeps the token and its claims. 0 disables the cache. Default 10000.
func WithTokenCacheSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 0 {
			return fmt.Errorf("interceptor: WithTokenCacheSize(%d): negative", n)
		}
		c.cacheSize = n
		return nil
	})
}

// WithStreamRecheck sets how often an open stream's credentials are checked
// again: the access token with the TokenVerifier (past the verified-token
// cache, so that a verifier that knows of revocations, such as
// introspection, ends the stream), and a stream opened with a step-up
// answer or grant against the step-up service's revocations
// (challenge.Revocations.RevokeGrants). Expiry (of the token, of max_token_age,
// of the step-up's max_age) needs no re-check: it ends the stream when it
// comes, by the Guard's clock, at the latest one interval late when the
// clock is not the system's. Default DefaultStreamRecheck (30 s); between
// 1 ms and 1 hour. Each re-check costs one token verification per stream.
func WithStreamRecheck(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < time.Millisecond || d > time.Hour {
			return fmt.Errorf("interceptor: WithStreamRecheck(%s): outside 1ms..1h", d)
		}
		c.streamRecheck = d
		return nil
	})
}
