package interceptor

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Option configures a Guard. Options report their mistakes from New.
type Option func(*config) error

// WithFiles sets the registry the policies are read from.
// Default: protoregistry.GlobalFiles, where generated code registers itself.
func WithFiles(files *protoregistry.Files) Option {
	return func(c *config) error {
		if files == nil {
			return errors.New("interceptor: WithFiles: nil registry")
		}
		c.files = files
		return nil
	}
}

// WithPolicy sets the policy of a service ("grpc.health.v1.Health") or of
// one method ("/grpc.health.v1.Health/Check") whose .proto file cannot be
// annotated. A configured policy replaces any annotation; a method's entry
// wins over its service's.
func WithPolicy(name string, p *stepupv1.Policy) Option {
	return func(c *config) error {
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
	}
}

// WithRequirePolicy makes the Guard refuse every call to a method that has no
// policy at all (no annotation on the method or its service, none
// configured), with PERMISSION_DENIED and reason POLICY_MISSING.
// Default: such a method gets the baseline policy, a DPoP-bound token and
// nothing more.
func WithRequirePolicy() Option {
	return func(c *config) error {
		c.requirePolicy = true
		return nil
	}
}
