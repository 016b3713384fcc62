package interceptor_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/stepuptest"
	"github.com/stepupgrpc/stepup/testing/relayserver"
)

// failingRelay's Echo returns an INVALID_TOKEN refusal of its own: the
// client must not take it for the Guard's.
type failingRelay struct {
	relayserver.Relay
	runs atomic.Int32
}

func (f *failingRelay) Echo(context.Context, *relayv1.EchoRequest) (*relayv1.EchoResponse, error) {
	f.runs.Add(1)
	st, _ := status.New(codes.Unauthenticated, "expired").WithDetails(&errdetails.ErrorInfo{Reason: interceptor.WireInvalidToken, Domain: interceptor.ErrorDomain})
	return nil, st.Err()
}

// newRelayGuard returns a Guard that trusts is's tokens and asks the relay
// service for the scope "relay"; it audits nowhere.
func newRelayGuard(t *testing.T, is *stepuptest.TokenIssuer) *interceptor.Guard {
	t.Helper()
	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithRequirePolicy(),
		interceptor.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})),
		interceptor.WithPolicy("relay.v1.RelayService", &stepupv1.Policy{Scopes: []string{"relay"}}))
	if err != nil {
		t.Fatal(err)
	}
	return guard
}

// TestRefusedTokenRefreshedOnce: an expired token refused by the Guard is
// dropped and the call retried once with a fresh one; a handler's own
// INVALID_TOKEN is never retried.
func TestRefusedTokenRefreshedOnce(t *testing.T) {
	is := stepuptest.NewIssuer(t)
	guard := newRelayGuard(t, is)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	expired := is.Token(t, stepuptest.TokenOptions{JKT: signer.Thumbprint(), Scope: "relay",
		IssuedAt: time.Now().Add(-2 * time.Hour), Expiry: time.Now().Add(-time.Hour)})
	fresh := is.Token(t, stepuptest.TokenOptions{JKT: signer.Thumbprint(), Scope: "relay"})
	var fetches atomic.Int32
	ts := interceptor.NewCachingTokenSource(func(context.Context) (string, time.Time, error) {
		if fetches.Add(1) == 1 {
			return expired, time.Time{}, nil // a source that does not know it expired
		}
		return fresh, time.Now().Add(time.Hour), nil
	})
	client, err := interceptor.NewClient(signer, ts, interceptor.WithInsecureLocalTransport())
	if err != nil {
		t.Fatal(err)
	}
	caller := &stepuptest.Caller{Key: key, Signer: signer, Client: client}
	relay := &failingRelay{Relay: relayserver.Relay{Counter: &relayserver.Counter{}}}
	conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { relayv1.RegisterRelayServiceServer(s, relay) }, caller)
	rc := relayv1.NewRelayServiceClient(conn)

	if _, err := rc.Whoami(context.Background(), &relayv1.WhoamiRequest{}); err != nil {
		t.Fatalf("after the refresh: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d token fetches, want 2 (the refused one and its replacement)", n)
	}
	// A source that keeps returning refused tokens: one retry, then the refusal.
	var stale atomic.Int32
	always := interceptor.NewCachingTokenSource(func(context.Context) (string, time.Time, error) {
		stale.Add(1)
		return expired, time.Time{}, nil
	})
	staleClient, err := interceptor.NewClient(signer, always, interceptor.WithInsecureLocalTransport())
	if err != nil {
		t.Fatal(err)
	}
	staleConn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { relayv1.RegisterRelayServiceServer(s, relay) },
		&stepuptest.Caller{Key: key, Signer: signer, Client: staleClient})
	if _, err := relayv1.NewRelayServiceClient(staleConn).Whoami(context.Background(), &relayv1.WhoamiRequest{}); status.Code(err) != codes.Unauthenticated || stale.Load() != 2 {
		t.Errorf("always refused: %v after %d fetches, want UNAUTHENTICATED after 2", err, stale.Load())
	}
	// The handler's own INVALID_TOKEN: returned as it is, the handler ran once.
	_, err = rc.Echo(context.Background(), &relayv1.EchoRequest{})
	if status.Code(err) != codes.Unauthenticated || relay.runs.Load() != 1 || fetches.Load() != 2 {
		t.Errorf("handler refusal: %v, %d runs, %d fetches", err, relay.runs.Load(), fetches.Load())
	}
}

func TestMemoryGrants(t *testing.T) {
	var m interceptor.MemoryGrants
	now := time.Unix(1_800_000_000, 0)
	if m.Grant("a", now) != "" {
		t.Error("a grant from an empty store")
	}
	m.KeepGrant("a", "g1", now.Add(time.Minute))
	if m.Grant("a", now) != "g1" || m.Grant("b", now) != "" {
		t.Error("the kept grant, by authority")
	}
	if m.Grant("a", now.Add(time.Minute)) != "" {
		t.Error("an expired grant")
	}
	m.KeepGrant("a", "g2", now.Add(time.Hour))
	m.ForgetGrants()
	if m.Grant("a", now) != "" {
		t.Error("a grant after ForgetGrants")
	}
}

// TestSlogLevels: refusals are WARN, except a first call without a nonce,
// which is the protocol's expected first step.
func TestSlogLevels(t *testing.T) {
	var buf bytes.Buffer
	sink := interceptor.NewSlogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
	for _, e := range []interceptor.Event{
		{Decision: interceptor.DecisionDeny, Reason: interceptor.Reason(dpop.ReasonNonceRequired)},
		{Decision: interceptor.DecisionDeny, Reason: interceptor.Reason(dpop.ReasonReplayed)},
		{Decision: interceptor.DecisionAllow, Reason: interceptor.ReasonAllowed},
	} {
		sink.Audit(context.Background(), &e)
	}
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec struct{ Level string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, rec.Level)
	}
	if strings.Join(levels, " ") != "INFO WARN INFO" {
		t.Errorf("levels %v, want INFO WARN INFO", levels)
	}
}
