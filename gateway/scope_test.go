package gateway_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestScopeWithALineBreakNeverReachesTheBackend: a token whose scp array
// holds "x\nadmin" was one scope to the Guard, and the assertion's scope
// ("relay x\nadmin") read as three by a backend that splits on white space,
// admin among them. The gateway refuses the token (TOKEN_INVALID_CLAIMS)
// before the backend sees anything; a well-formed scp array passes.
func TestScopeWithALineBreakNeverReachesTheBackend(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	r := startGateway(t, f.config(be.addr))
	key := newCaller(t, f, r.addr, "alice", aliceTOTP, "relay")
	call := func(scp []string) error {
		m := &manual{signer: key.signer, token: f.issuer.Mint(t, time.Now(), testkit.TokenOptions{
			JKT: key.jkt, Issuer: tokenIssuer, Audience: tokenAudience, Claims: map[string]any{"scp": scp},
		})}
		ctx, _ := m.ctx(t, mEcho)
		_, err := relayv1.NewRelayServiceClient(dialGateway(t, f, r.addr)).Echo(ctx, &relayv1.EchoRequest{})
		return err
	}
	for _, s := range []string{"x\nadmin", "x\radmin", "x\vadmin", "x\fadmin", "x\u0085admin", "x\u00a0admin"} {
		before := be.calls(t, mEcho)
		err := call([]string{"relay", s})
		ev, _ := lastFor(r.audit, mEcho)
		if status.Code(err) != codes.Unauthenticated || ev.Reason != interceptor.ReasonTokenInvalidClaims {
			t.Errorf("scp element %q: %v, audited %+v", s, err, ev)
		}
		if be.calls(t, mEcho) != before {
			t.Errorf("scp element %q reached the backend", s)
		}
	}
	if err := call([]string{"relay", "relay:read"}); err != nil {
		t.Fatalf("control: %v", err)
	}
}
