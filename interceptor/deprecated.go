package interceptor

import (
	"time"

	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/challenge"
)

// Names kept for one release; CHANGELOG.md says what replaces them.

// UnaryServer returns the unary server interceptor.
//
// Deprecated: use UnaryServerInterceptor, the name grpc-go and
// go-grpc-middleware give it. UnaryServer goes in the next release.
func (g *Guard) UnaryServer() grpc.UnaryServerInterceptor { return g.UnaryServerInterceptor() }

// StreamServer returns the stream server interceptor.
//
// Deprecated: use StreamServerInterceptor. StreamServer goes in the next
// release.
func (g *Guard) StreamServer() grpc.StreamServerInterceptor { return g.StreamServerInterceptor() }

// UnaryClient returns the unary client interceptor.
//
// Deprecated: use UnaryClientInterceptor. UnaryClient goes in the next
// release.
func (c *Client) UnaryClient() grpc.UnaryClientInterceptor { return c.UnaryClientInterceptor() }

// StreamClient returns the stream client interceptor.
//
// Deprecated: use StreamClientInterceptor. StreamClient goes in the next
// release.
func (c *Client) StreamClient() grpc.StreamClientInterceptor { return c.StreamClientInterceptor() }

// WithClientClock sets the client's time source.
//
// Deprecated: use WithClock, which configures a Client as well as a Guard.
// WithClientClock goes in the next release.
func WithClientClock(now func() time.Time) ClientOption { return WithClock(now) }

// StepUp is a resolved step-up requirement.
//
// Deprecated: use challenge.Requirement (the same type): stepupv1.StepUp is
// the annotation, a different thing under the same name. StepUp goes in the
// next release.
type StepUp = challenge.Requirement

// Policy is the effective policy of a method.
//
// Deprecated: use EffectivePolicy (the same type): stepupv1.Policy is the
// annotation a policy is resolved from, a different thing under the same
// name. Policy goes in the next release.
type Policy = EffectivePolicy

// WireInsufficientUserAu is WireInsufficientUserAuthentication.
//
// Deprecated: use WireInsufficientUserAuthentication; this name goes in the
// next release (CHANGELOG.md).
const WireInsufficientUserAu = WireInsufficientUserAuthentication

// WithTokenRevocation is WithTokenRevocationFrom with the revocations of
// the step-up service (WithStepUp, which it needs).
//
// Deprecated: use WithTokenRevocationFrom(service.Revocations()), or
// WithTokenRevocationFrom over challenge.NewRevocations without a step-up
// service: token and key revocation are not step-up. WithTokenRevocation
// goes in the next release.
func WithTokenRevocation() Option {
	return optionFunc(func(c *config) error {
		c.tokenRevocation = true
		return nil
	})
}
