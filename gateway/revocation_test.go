package gateway_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/gateway/serverkit"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestReplicasEnforceRevocations runs gateway replicas on one shared store
// (Redis, and a store given in Go) and revokes as an operator would, with
// challenge.Revocations over the same store: a revoked token, then a
// revoked DPoP key, is refused on its next call at every replica, although
// each replica's verified-token cache holds the token, and never reaches
// the backend. A replica without step_up checks them too. A replica with
// token.insecure_no_revocation does not: the opt-out is explicit. Before,
// the gateway never built its Guard with WithTokenRevocation: revoked
// tokens and keys reached the backend until they expired.
func TestReplicasEnforceRevocations(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		url := redisURL(t)
		store, closeStore, err := serverkit.NewRedisStore("redis", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeStore)
		testReplicasEnforceRevocations(t, store, func(cfg *stepupv1.GatewayConfig) []gateway.Option {
			cfg.RedisUrl = url
			return nil
		})
	})
	t.Run("a store given in Go", func(t *testing.T) {
		store, err := challenge.NewMemoryStore(1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		testReplicasEnforceRevocations(t, store, func(*stepupv1.GatewayConfig) []gateway.Option {
			return []gateway.Option{gateway.WithStore(store)}
		})
	})
}

func testReplicasEnforceRevocations(t *testing.T, store challenge.Store, share func(*stepupv1.GatewayConfig) []gateway.Option) {
	f := newFiles(t)
	be := startBackend(t, f)
	cfg := f.config(be.addr)
	opts := share(cfg)
	a, b := startGateway(t, cfg, opts...), startGateway(t, cfg, opts...)
	// A replica without step_up: only relay.v1, which needs no step-up.
	bare := proto.Clone(cfg).(*stepupv1.GatewayConfig)
	bare.StepUp = nil
	bare.DescriptorSets = []string{writeDescriptorSet(t, f.dir, "relay.binpb", relayv1.File_relay_v1_relay_proto)}
	delete(bare.Policies, mUpload)
	delete(bare.Policies, "/relay.v1.RelayService/Pay")
	c := startGateway(t, bare, opts...)
	// A replica that opts out.
	optOut := proto.Clone(cfg).(*stepupv1.GatewayConfig)
	optOut.Token.InsecureNoRevocation = true
	d := startGateway(t, optOut, opts...)
	replicas := map[string]*running{"a": a, "b": b, "without step_up": c}

	rev, err := challenge.NewRevocations(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	subject := f.carol // unique to this run: the Redis store outlives it
	key := newCaller(t, f, a.addr, subject, aliceTOTP, "relay")
	mint := func(issued time.Time) *manual {
		return &manual{signer: key.signer, token: f.issuer.Mint(t, time.Now(), testkit.TokenOptions{
			Subject: subject, JKT: key.jkt, Scope: "relay", Issuer: tokenIssuer, Audience: tokenAudience,
			IssuedAt: issued, Expiry: issued.Add(time.Hour),
		})}
	}
	echo := func(r *running, m *manual) error {
		ctx, _ := m.ctx(t, mEcho)
		_, err := relayv1.NewRelayServiceClient(dialGateway(t, f, r.addr)).Echo(ctx, &relayv1.EchoRequest{})
		return err
	}
	refused := func(name string, r *running, m *manual, want interceptor.Reason) {
		t.Helper()
		before := be.calls(t, mEcho)
		err := echo(r, m)
		if status.Code(err) != codes.Unauthenticated || interceptor.ReasonFromError(err) != interceptor.WireInvalidToken {
			t.Fatalf("replica %s: %v, want UNAUTHENTICATED / INVALID_TOKEN", name, err)
		}
		if ev, _ := lastFor(r.audit, mEcho); ev.Reason != want || ev.Subject != subject {
			t.Fatalf("replica %s audited %+v, want %s", name, ev, want)
		}
		if n := be.calls(t, mEcho); n != before {
			t.Fatalf("replica %s: the refused call reached the backend", name)
		}
	}

	old := mint(time.Now().Add(-time.Minute))
	for name, r := range replicas {
		if err := echo(r, old); err != nil { // the token is now in the replica's cache
			t.Fatalf("replica %s before any revocation: %v", name, err)
		}
	}
	if err := rev.RevokeTokens(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	for name, r := range replicas {
		refused(name, r, old, interceptor.ReasonTokenRevoked)
	}
	if err := echo(d, old); err != nil {
		t.Errorf("token.insecure_no_revocation: %v", err)
	}

	// A token issued after the revocation works; revoking its key stops it,
	// and every other token bound to that key.
	fresh := mint(time.Now().Add(2 * time.Second))
	for name, r := range replicas {
		if err := echo(r, fresh); err != nil {
			t.Fatalf("replica %s, a token issued after the revocation: %v", name, err)
		}
	}
	if err := rev.RevokeKey(context.Background(), subject, key.jkt); err != nil {
		t.Fatal(err)
	}
	for name, r := range replicas {
		refused(name, r, fresh, interceptor.ReasonKeyRevoked)
	}

	// A token that would outlive a revocation's memory is refused outright.
	long := &manual{signer: key.signer, token: f.issuer.Mint(t, time.Now(), testkit.TokenOptions{
		Subject: "dave-" + subject, JKT: key.jkt, Scope: "relay", Issuer: tokenIssuer, Audience: tokenAudience,
		Expiry: time.Now().Add(challenge.MaxTokenLifetime + time.Hour),
	})}
	refusedLong := func(name string, r *running) {
		t.Helper()
		err := echo(r, long)
		if ev, _ := lastFor(r.audit, mEcho); status.Code(err) != codes.Unauthenticated || ev.Reason != interceptor.ReasonTokenLifetimeTooLong {
			t.Fatalf("replica %s, a token living 25 h: %v, audited %+v", name, err, ev)
		}
	}
	refusedLong("a", a)
	refusedLong("without step_up", c)
	if err := echo(d, long); err != nil {
		t.Errorf("token.insecure_no_revocation, a token living 25 h: %v", err)
	}
}

// TestRevocationNeedsASharedStore: without a shared store nobody could
// write a revocation the gateway reads, so none is checked, and tokens of
// any lifetime pass (the operator sees token_revocation=false at start).
func TestRevocationNeedsASharedStore(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	r := startGateway(t, f.config(be.addr))
	key := newCaller(t, f, r.addr, "alice", aliceTOTP, "relay")
	long := &manual{signer: key.signer, token: f.issuer.Mint(t, time.Now(), testkit.TokenOptions{
		JKT: key.jkt, Scope: "relay", Issuer: tokenIssuer, Audience: tokenAudience, Expiry: time.Now().Add(48 * time.Hour),
	})}
	ctx, _ := long.ctx(t, mEcho)
	if _, err := relayv1.NewRelayServiceClient(dialGateway(t, f, r.addr)).Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Fatalf("a 48-hour token without a shared store: %v", err)
	}
}
