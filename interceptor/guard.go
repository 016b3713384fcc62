package interceptor

import (
	"google.golang.org/protobuf/reflect/protoregistry"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Guard enforces Stepup policies on a gRPC server. Build it once with New and
// register both of its interceptors:
//
//	grpc.NewServer(
//		grpc.UnaryInterceptor(guard.UnaryServer()),
//		grpc.StreamInterceptor(guard.StreamServer()),
//	)
//
// A Guard is safe for concurrent use.
type Guard struct {
	cfg      config
	policies *policyTable
}

// New builds a Guard. Every configuration mistake is reported here, never on
// the first request.
func New(opts ...Option) (*Guard, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	files := cfg.files
	if files == nil {
		files = protoregistry.GlobalFiles
	}
	table, err := newPolicyTable(files, cfg.configured)
	if err != nil {
		return nil, err
	}
	return &Guard{cfg: cfg, policies: table}, nil
}

// Policy returns the effective policy of a full method name
// ("/pkg.Service/Method"). It allocates nothing for a method already resolved.
func (g *Guard) Policy(fullMethod string) (*Policy, error) {
	return g.policies.lookup(fullMethod)
}

type config struct {
	files         *protoregistry.Files
	configured    map[string]*stepupv1.Policy
	requirePolicy bool
}

func defaultConfig() config {
	return config{configured: map[string]*stepupv1.Policy{}}
}
