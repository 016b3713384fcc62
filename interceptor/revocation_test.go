package interceptor_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// TestTokenRevocation: RevokeTokens stops a token on the next call, while
// the verified-token cache still holds it, under the deprecated
// WithTokenRevocation (the step-up service's revocations; the tests below
// and TestTokenRevocationWithoutStepUp use WithTokenRevocationFrom);
// without token revocation the token keeps working until it expires.
func TestTokenRevocation(t *testing.T) {
	audit := &interceptor.AuditRecorder{}
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithTokenRevocation(), interceptor.WithAuditSink(audit)})
	if _, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err) // the token is now in the cache
	}
	if err := w.StepUp.Revocations().RevokeTokens(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := w.Relay.Echo(context.Background(), &relayv1.EchoRequest{})
	if status.Code(err) != codes.Unauthenticated || interceptor.ReasonFromError(err) != interceptor.WireInvalidToken {
		t.Fatalf("a revoked token: %v", err)
	}
	if ev, _ := audit.Last(); ev.Reason != interceptor.ReasonTokenRevoked || ev.Subject != "alice" {
		t.Errorf("audit %+v", ev)
	}

	plain := relaykit.Start(t, []interceptor.Option{interceptor.WithAuditSink(audit)})
	_ = plain.StepUp.Revocations().RevokeTokens(context.Background(), "alice")
	if _, err := plain.Relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Errorf("without token revocation: %v", err)
	}
}

// BenchmarkTokenRevocation: the same DPoP call with and without the
// per-call revocation check (in-process store), alternated in one loop.
func BenchmarkTokenRevocation(b *testing.B) {
	discard := interceptor.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {}))
	on := relaykit.Start(b, []interceptor.Option{interceptor.WithTokenRevocation(), discard})
	off := relaykit.Start(b, []interceptor.Option{discard})
	ctx := context.Background()
	req := &relayv1.EchoRequest{}
	for _, w := range []*relaykit.World{on, off} {
		if _, err := w.Relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	var tOn, tOff time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first, second, tf, ts := on, off, &tOn, &tOff
		if i%2 == 1 {
			first, second, tf, ts = off, on, &tOff, &tOn
		}
		t0 := time.Now()
		if _, err := first.Relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := second.Relay.Echo(ctx, req); err != nil {
			b.Fatal(err)
		}
		*tf += t1.Sub(t0)
		*ts += time.Since(t1)
	}
	b.ReportMetric(float64(tOn)/float64(tOff), "revocation/none")
}

// TestTokenRevocationEndsStreams: an open stream ends at its next re-check
// once its token is revoked, wherever the Guard reads revocations: the
// step-up service's (the deprecated WithTokenRevocation), or a store of
// its own given to WithTokenRevocationFrom beside a step-up service that
// does not hold them (the stream's re-check must read the option's, as a
// call does).
func TestTokenRevocationEndsStreams(t *testing.T) {
	own := func(t *testing.T) *challenge.Revocations {
		store, err := challenge.NewMemoryStore(1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := challenge.NewRevocations(store, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	cases := []struct {
		name string
		// revoke builds the option and returns where revocations are written.
		revoke func(t *testing.T) (interceptor.Option, func(*relaykit.World) *challenge.Revocations)
	}{
		{"the step-up service's", func(*testing.T) (interceptor.Option, func(*relaykit.World) *challenge.Revocations) {
			return interceptor.WithTokenRevocation(), func(w *relaykit.World) *challenge.Revocations { return w.StepUp.Revocations() }
		}},
		{"WithTokenRevocationFrom's own store", func(t *testing.T) (interceptor.Option, func(*relaykit.World) *challenge.Revocations) {
			rev := own(t)
			return interceptor.WithTokenRevocationFrom(rev), func(*relaykit.World) *challenge.Revocations { return rev }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opt, where := c.revoke(t)
			audit := &interceptor.AuditRecorder{}
			w := relaykit.Start(t, []interceptor.Option{opt, interceptor.WithAuditSink(audit),
				interceptor.WithStreamRecheck(10 * time.Millisecond)})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := w.Relay.Chat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(&relayv1.ChatRequest{Payload: []byte("a")}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
			if err := where(w).RevokeTokens(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
			// The next re-check ends the stream (a stream idle in the handler's
			// RecvMsg sees it at its next message): Recv returns its status.
			var ended error
			for start := time.Now(); ended == nil && time.Since(start) < 10*time.Second; {
				if ended = s.Send(&relayv1.ChatRequest{Payload: []byte("b")}); ended == nil {
					_, ended = s.Recv()
				}
			}
			if errors.Is(ended, io.EOF) { // Send saw the end: Recv has the status
				_, ended = s.Recv()
			}
			err = ended
			if status.Code(err) != codes.Unauthenticated {
				for _, ev := range audit.Events() {
					t.Logf("%s %s %s", ev.Decision, ev.Reason, ev.Detail)
				}
				t.Fatalf("after the revocation: %v", err)
			}
			if ev, _ := audit.Last(); ev.Reason != interceptor.ReasonStreamRevoked || !strings.Contains(ev.Detail, "were revoked") {
				t.Errorf("audit %+v", ev)
			}
		})
	}
}

// TestKeyRevocation: RevokeKey stops every token bound to the DPoP key on
// the next call (the cached one too), refused as DPOP_KEY_REVOKED with the
// wire reason INVALID_TOKEN, while a key of the same subject that was not
// revoked keeps working, and a revoked key of another subject does not
// touch this one.
func TestKeyRevocation(t *testing.T) {
	audit := &interceptor.AuditRecorder{}
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithTokenRevocation(), interceptor.WithAuditSink(audit)})
	ctx := context.Background()
	if _, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err) // the token is now in the cache
	}
	if err := w.StepUp.Revocations().RevokeKey(ctx, "mallory", w.Signer.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Fatalf("the key revoked for another subject stopped alice: %v", err)
	}
	if err := w.StepUp.Revocations().RevokeKey(ctx, "alice", w.Signer.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	_, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{})
	if status.Code(err) != codes.Unauthenticated || interceptor.ReasonFromError(err) != interceptor.WireInvalidToken {
		t.Fatalf("a token bound to a revoked key: %v", err)
	}
	if ev, _ := audit.Last(); ev.Reason != interceptor.ReasonKeyRevoked || ev.Subject != "alice" || !strings.Contains(ev.Detail, w.Signer.Thumbprint()) {
		t.Errorf("audit %+v", ev)
	}
	// A new key of alice's, with a token bound to it, works.
	other := w.WithNewKey(t)
	if _, err := other.Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Errorf("alice's other key: %v", err)
	}
	if err := w.StepUp.Revocations().RevokeKey(ctx, "alice", ""); err == nil {
		t.Error("RevokeKey with an empty thumbprint accepted")
	}
}

// TestRevocationCoversTheTokensLife: a revocation is remembered for
// challenge.MaxTokenLifetime plus 5 minutes, so under WithTokenRevocationFrom
// every token it covers is refused until it expires: a token that lives
// longer (or has no iat or exp) is refused outright, and one that lives
// exactly as long is still refused at its exp plus the leeway. Without
// that, a 48-hour token revoked at once worked again after 24 hours.
func TestRevocationCoversTheTokensLife(t *testing.T) {
	const hour = time.Hour
	for _, tc := range []struct {
		name     string
		lifetime time.Duration // exp - iat; 0: no iat
		// at each time after issue (the token is revoked at issue, after the
		// first call), the expected outcome
		steps []revocationStep
	}{
		{name: "a token living 48 h, revoked, after the revocation is forgotten", lifetime: 48 * hour, steps: []revocationStep{
			{0, atkToken(interceptor.ReasonTokenLifetimeTooLong)},
			{24*hour + 6*time.Minute, atkToken(interceptor.ReasonTokenLifetimeTooLong)},
			{47 * hour, atkToken(interceptor.ReasonTokenLifetimeTooLong)},
		}},
		{name: "a token without iat", lifetime: 0, steps: []revocationStep{
			{0, atkToken(interceptor.ReasonTokenLifetimeTooLong)},
		}},
		{name: "a token living 24 h, revoked at issue, at its exp plus the leeway", lifetime: 24 * hour, steps: []revocationStep{
			{0, atkAllowed},
			{time.Second, atkToken(interceptor.ReasonTokenRevoked)},
			{24*hour + 29*time.Second, atkToken(interceptor.ReasonTokenRevoked)},
			{24*hour + 31*time.Second, atkToken(interceptor.ReasonTokenExpired)},
		}},
		{name: "control: a token living 24 h, not revoked", lifetime: 24 * hour, steps: []revocationStep{
			{0, atkAllowed},
			{24*hour + 29*time.Second, atkAllowed},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The service default without its max_token_age (1 h), which
			// would refuse the day-old token for its age.
			files := reannotated(t, map[string]*stepupv1.Policy{"policytest.v1.GuardedService": {Scopes: []string{"guarded"}}})
			e := newEnv(t, envOpts{revocations: true, guardOpts: []interceptor.Option{interceptor.WithFiles(files)}})
			issued := e.clock.Now()
			c := atkTokenClaims(e)
			c["exp"] = issued.Add(tc.lifetime).Unix()
			if tc.lifetime == 0 {
				delete(c, "iat")
				c["exp"] = issued.Add(hour).Unix()
			}
			p := atkWithToken(e, atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey()))
			for i, s := range tc.steps {
				e.clock.Set(issued.Add(s.after))
				runAtk(t, e, func() error { return atkDo(p.ctx(t, mPlain), e, mPlain) }, s.want)
				if i == 0 && !strings.HasPrefix(tc.name, "control: ") {
					if err := e.stepUp.Revocations().RevokeTokens(context.Background(), "alice"); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
	// Without token revocation nothing is remembered, nothing is refused
	// for its lifetime.
	e := newEnv(t, envOpts{})
	c := atkTokenClaims(e)
	c["exp"] = e.clock.Now().Add(48 * hour).Unix()
	p := atkWithToken(e, atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey()))
	runAtk(t, e, func() error { return atkDo(p.ctx(t, mPlain), e, mPlain) }, atkAllowed)
}

// TestTokenRevocationWithoutStepUp: a Guard with no step-up service, given
// the revocations of a store another program revokes in, refuses a revoked
// token (TOKEN_REVOKED) and a token bound to a revoked DPoP key
// (DPOP_KEY_REVOKED), each signed by the real issuer and presented with a
// valid proof of the real key, while tokens issued after the revocation
// and other subjects' tokens on other keys still work.
func TestTokenRevocationWithoutStepUp(t *testing.T) {
	clock := newClock()
	store, err := challenge.NewMemoryStore(1000, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := challenge.NewRevocations(store, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{clock: clock, noStepUp: true, guardOpts: []interceptor.Option{interceptor.WithTokenRevocationFrom(rev)}})
	ctx := context.Background()
	token := func(sub string) *atkPrincipal {
		c := atkTokenClaims(e)
		c["sub"] = sub
		return atkWithToken(e, atkSignToken(t, atkTokenHeader(), c, e.issuer.PrivateKey()))
	}
	call := func(p *atkPrincipal) func() error {
		return func() error { return atkDo(p.ctx(t, mPlain), e, mPlain) }
	}

	alice := token("alice")
	runAtk(t, e, call(alice), atkAllowed) // the token is now in the cache
	if err := rev.RevokeTokens(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	runAtk(t, e, call(alice), atkToken(interceptor.ReasonTokenRevoked))
	// A thief of the revoked token without its key is refused for the
	// proof, and does not learn that the theft was noticed.
	k := atkAttackerKey(t)
	ks, err := dpop.NewSigner(k, dpop.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	thief := &atkPrincipal{key: k, signer: ks, token: alice.token}
	runAtk(t, e, call(thief), atkProofReason(dpop.ReasonKeyMismatch))
	clock.Advance(time.Second)
	runAtk(t, e, call(token("alice")), atkAllowed) // issued after the revocation

	bob := token("bob") // bound to the same DPoP key
	runAtk(t, e, call(bob), atkAllowed)
	if err := rev.RevokeKey(ctx, "bob", e.signer.Thumbprint()); err != nil {
		t.Fatal(err)
	}
	runAtk(t, e, call(bob), atkToken(interceptor.ReasonKeyRevoked))
	clock.Advance(time.Second)
	runAtk(t, e, call(token("bob")), atkToken(interceptor.ReasonKeyRevoked)) // a fresh token on the revoked key
	runAtk(t, e, call(token("alice")), atkAllowed)                           // the key is revoked for bob only

	// The deprecated option still needs a step-up service to read from.
	if _, err := interceptor.New(interceptor.WithTokenVerifier(e.jwt), interceptor.WithTokenRevocation()); err == nil {
		t.Error("WithTokenRevocation without a step-up service accepted")
	}
}

// revocationStep is a call some time after a token's issue, and its outcome.
type revocationStep struct {
	after time.Duration
	want  refusal
}
