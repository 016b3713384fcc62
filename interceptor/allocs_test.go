package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
)

// maxGuardAllocs bounds what the Guard allocates on an allowed call (a
// DPoP call with a cached token and a fresh proof, with or without a
// grant) beyond what the proof's signature check allocates (inside
// internal/p256, in math/big), which the physical limit of the call pays
// too.
const maxGuardAllocs = 20

// TestAllowedPathAllocations counts what the Guard allocates on an allowed
// call, its audit event included (allocation counts are deterministic;
// time is not, and is left to BenchmarkCalls). The context is what the
// gRPC transport gives an interceptor: the call's transport stream (where
// the Guard sets its header), the peer and the incoming metadata.
func TestAllowedPathAllocations(t *testing.T) {
	e := newEnv(t, envOpts{guardOpts: []interceptor.Option{discardAudit()}})
	tok := e.boundToken(tokenOpts{})
	grant := obtainGrant(t, e, tok)
	unary := e.guard.UnaryServerInterceptor()
	req := &policytestv1.PlainRequest{}
	var seen *interceptor.Identity
	handler := func(ctx context.Context, _ any) (any, error) {
		seen, _ = interceptor.IdentityFromContext(ctx)
		return nil, nil
	}
	bare := esVerifier(t, e.proof(mPlain, tok), e.key.Public().(*ecdsa.PublicKey))
	crypto := testing.AllocsPerRun(50, func() {
		if !bare() {
			t.Fatal("bare verification failed")
		}
	})
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50123}}
	for _, c := range []struct {
		name, method string
		extra        []string
	}{
		{"dpop", mPlain, nil},
		{"dpop+grant", mGranted, []string{"stepup-grant", grant}},
	} {
		t.Run(c.name, func(t *testing.T) {
			const runs = 50
			ctxs := make([]context.Context, runs+1)
			for i := range ctxs {
				md := metadata.Pairs(append([]string{"authorization", "DPoP " + tok, "dpop", e.proof(c.method, tok),
					":authority", "api.example", "content-type", "application/grpc", "user-agent", "grpc-go/1.0", "te", "trailers"}, c.extra...)...)
				ctx := grpc.NewContextWithServerTransportStream(context.Background(), transportStream{method: c.method})
				ctxs[i] = peer.NewContext(metadata.NewIncomingContext(ctx, md), &peer.Peer{Addr: p.Addr})
			}
			info := &grpc.UnaryServerInfo{FullMethod: c.method}
			i := 0
			allocs := testing.AllocsPerRun(runs, func() {
				seen = nil
				if _, err := unary(ctxs[i], req, info, handler); err != nil {
					t.Fatal(err)
				}
				i++
			})
			if seen == nil || seen.Thumbprint != e.signer.Thumbprint() {
				t.Fatalf("the handler saw %+v", seen)
			}
			t.Logf("%s: %.0f allocations per allowed call, %.0f of them in the signature check", c.name, allocs, crypto)
			if allocs-crypto > maxGuardAllocs {
				t.Errorf("%s: the Guard allocates %.0f times per allowed call beyond the signature check's %.0f, budget %d",
					c.name, allocs-crypto, crypto, maxGuardAllocs)
			}
		})
	}
}

// transportStream stands for the call's stream of the gRPC transport in a
// context (grpc.NewContextWithServerTransportStream): it takes metadata and
// keeps none.
type transportStream struct{ method string }

func (s transportStream) Method() string             { return s.method }
func (transportStream) SetHeader(metadata.MD) error  { return nil }
func (transportStream) SendHeader(metadata.MD) error { return nil }
func (transportStream) SetTrailer(metadata.MD) error { return nil }
