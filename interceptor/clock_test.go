package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/stepuptest"
	"github.com/stepupgrpc/stepup/testing/relayserver"
)

// TestOneClockOption: the same WithClock value configures a Guard and a
// Client. A Guard on a clock two hours ahead refuses a token that expires
// in one hour (TOKEN_EXPIRED in the audit event), one on the real clock
// accepts it; a nil clock is refused by New and NewClient alike.
func TestOneClockOption(t *testing.T) {
	is := stepuptest.NewIssuer(t)
	ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
	clock := interceptor.WithClock(ahead)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	if _, err := interceptor.NewClient(signer, interceptor.StaticToken("t"), clock); err != nil {
		t.Fatalf("NewClient(WithClock): %v", err)
	}
	for _, tc := range []struct {
		name   string
		opts   []interceptor.Option
		reason interceptor.Reason
	}{
		{"real clock", nil, interceptor.ReasonAllowed},
		{"clock ahead", []interceptor.Option{clock}, interceptor.ReasonTokenExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &interceptor.AuditRecorder{}
			guard, err := interceptor.New(append([]interceptor.Option{interceptor.WithTokenVerifier(is.Verifier(t)),
				interceptor.WithAuditSink(rec), interceptor.WithRequirePolicy(),
				interceptor.WithPolicy("relay.v1.RelayService", &stepupv1.Policy{Scopes: []string{"relay"}})}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { relayv1.RegisterRelayServiceServer(s, &relayserver.Relay{}) },
				stepuptest.NewCaller(t, is, "alice", "relay"))
			_, _ = relayv1.NewRelayServiceClient(conn).Echo(context.Background(), &relayv1.EchoRequest{})
			if e, ok := rec.Last(); !ok || e.Reason != tc.reason {
				t.Errorf("audit reason = %q, want %q", e.Reason, tc.reason)
			}
		})
	}
	if _, err := interceptor.New(interceptor.WithClock(nil)); err == nil || !strings.Contains(err.Error(), "WithClock") {
		t.Errorf("New(WithClock(nil)) = %v, want an error naming WithClock", err)
	}
	if _, err := interceptor.NewClient(signer, interceptor.StaticToken("t"), interceptor.WithClock(nil)); err == nil || !strings.Contains(err.Error(), "WithClock") {
		t.Errorf("NewClient(WithClock(nil)) = %v, want an error naming WithClock", err)
	}
	if _, err := interceptor.NewClient(signer, interceptor.StaticToken("t"), interceptor.WithClientClock(nil)); err == nil {
		t.Error("NewClient(WithClientClock(nil)) accepted: the deprecated name must be the same option")
	}
}
