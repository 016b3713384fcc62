package interceptor_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// TestCoverageReasonsRefuseCalls: each reason a Guard cannot enforce a
// method (no TokenVerifier, no step-up service, none of the allowed factors
// verifiable) appears in the coverage report's row for the method, and a
// call to it over a real server is refused (INTERNAL, audit reason
// INTERNAL, the report's text as detail), never reaching the handler.
func TestCoverageReasonsRefuseCalls(t *testing.T) {
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	totpOnly, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return "", challenge.ErrUnknownSubject }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	refuse := interceptor.WithTokenVerifier(interceptor.TokenVerifierFunc(
		func(context.Context, string) (*interceptor.Token, error) { return nil, errors.New("no") }))
	for _, c := range []struct {
		name, method, want string
		opts               []interceptor.Option
	}{
		// An empty registry: no method has a policy, so New accepts the
		// missing verifier, and every call would need one.
		{"no token verifier", guarded + "Sensitive", "needs an access token but no TokenVerifier is configured",
			[]interceptor.Option{interceptor.WithFiles(new(protoregistry.Files))}},
		{"no step-up service", guarded + "Sensitive", "requires step-up but no challenge service is configured",
			[]interceptor.Option{refuse}},
		{"no allowed factor", stepup + "Approve", "allows step-up factors [FACTOR_WEBAUTHN], none of which",
			[]interceptor.Option{refuse, interceptor.WithStepUp(totpOnly)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			audit := &auditLog{}
			g, err := interceptor.New(append(c.opts, interceptor.WithAuditSink(audit))...)
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer(grpc.UnaryInterceptor(g.UnaryServerInterceptor()), grpc.StreamInterceptor(g.StreamServerInterceptor()))
			registerAll(srv)
			report, cerr := g.Coverage(srv)
			var row interceptor.MethodPolicy
			for _, m := range report {
				if m.FullMethod == c.method {
					row = m
				}
			}
			if row.Unenforceable == nil || !strings.Contains(row.Unenforceable.Error(), c.method+" ") || !strings.Contains(row.Unenforceable.Error(), c.want) {
				t.Fatalf("report row %s: Unenforceable = %v, want %q", c.method, row.Unenforceable, c.want)
			}
			if cerr == nil || !strings.Contains(cerr.Error(), row.Unenforceable.Error()) {
				t.Errorf("Coverage error = %v, want it to carry the row's reason", cerr)
			}
			if err := g.CheckCoverage(srv); err == nil || !strings.Contains(err.Error(), row.Unenforceable.Error()) {
				t.Errorf("CheckCoverage = %v, want the row's reason", err)
			}
			e := &env{t: t}
			e.serve(srv, false)
			err = e.conn().Invoke(context.Background(), c.method, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.Internal {
				t.Fatalf("call to %s = %v, want INTERNAL (refused, handler not reached)", c.method, err)
			}
			ev := audit.last(t)
			if ev.Reason != interceptor.ReasonInternal || ev.Method != c.method || !strings.Contains(ev.Detail, row.Unenforceable.Error()) {
				t.Errorf("audit %+v, want reason %s with detail %q", ev, interceptor.ReasonInternal, row.Unenforceable)
			}
		})
	}
}

// TestNewJoinsOptionMistakes: New reports every bad option, not the first,
// and the mistakes of options that need each other with them.
func TestNewJoinsOptionMistakes(t *testing.T) {
	_, err := interceptor.New(interceptor.WithTokenVerifier(nil), interceptor.WithStepUp(nil), interceptor.WithTokenRevocation())
	for _, want := range []string{"WithTokenVerifier: nil verifier", "WithStepUp: nil service", "WithTokenRevocation needs WithStepUp"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want a mistake %q among the others", err, want)
		}
	}
}
