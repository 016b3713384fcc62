package interceptor_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestDataLossReplays drives the Guard end to end over a shared Redis store
// that loses its data: a private redis-server, killed by its PID and started
// again empty on the same port. A plain DPoP call and TOTP-approved
// transfers bound to their exact request, accepted before the loss, are
// presented again after it: whole, and, by an attacker who also holds the
// DPoP key, a transfer's answer with a fresh proof, and a TOTP code on a
// challenge of its own. Each is refused with the reason of the store's
// floor, and no transfer runs twice. Once the floor has passed, fresh calls
// and a fresh step-up work on the same Guard.
func TestDataLossReplays(t *testing.T) {
	srv := testkit.StartRedis(t)
	clock := newClock()
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, DisableIdentity: true,
		MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rc.Close() })
	store, err := redisstore.New(rc, redisstore.WithClock(clock.Now), redisstore.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{
		clock:      clock,
		dpopOpts:   []dpop.VerifierOption{dpop.WithReplayStore(store)},
		stepUpOpts: []challenge.Option{challenge.WithStore(store)},
	})
	alice := atkAlice(e)

	// Before the loss: a plain call, and a transfer approved with TOTP.
	plain := alice.creds(t, mPlain)
	if err := atkDo(withCreds(context.Background(), plain...), e, mPlain); err != nil {
		t.Fatal(err)
	}
	ch := atkChallenge(t, e, alice, mSensitive)
	answer := atkTOTPAnswer(t, e, alice, ch, "")
	transfer := alice.creds(t, mSensitive, "stepup-answer", answer)
	if err := atkDo(withCreds(context.Background(), transfer...), e, mSensitive); err != nil {
		t.Fatal(err)
	}
	// A call from a client whose clock runs 4 s ahead (the verifier
	// accepts iat up to 5 s in the future).
	fast, err := dpop.NewSigner(e.key, dpop.WithClock(func() time.Time { return clock.Now().Add(4 * time.Second) }))
	if err != nil {
		t.Fatal(err)
	}
	aheadProof, err := fast.Proof("POST", "https://api.example"+mPlain, alice.token)
	if err != nil {
		t.Fatal(err)
	}
	dated := []string{"authorization", "DPoP " + alice.token, "dpop", aheadProof}
	if err := atkDo(withCreds(context.Background(), dated...), e, mPlain); err != nil {
		t.Fatal(err)
	}
	// A second transfer, approved with the code of the next time step (the
	// user's authenticator runs ahead; the skew accepts it).
	ahead := atkCode(t, clock.Now().Add(30*time.Second))
	if err := atkDo(alice.ctx(t, mSensitive, "stepup-answer", atkTOTPAnswer(t, e, alice, atkChallenge(t, e, alice, mSensitive), ahead)), e, mSensitive); err != nil {
		t.Fatal(err)
	}
	if n := e.server.handled(mSensitive); n != 2 {
		t.Fatalf("the transfers ran %d times, want 2", n)
	}
	// The same replays, before the loss: refused as replays.
	t.Run("control: replays before the loss", func(t *testing.T) {
		runAtk(t, e, func() error { return atkDo(withCreds(context.Background(), plain...), e, mPlain) },
			atkProofReason(dpop.ReasonReplayed))
		runAtk(t, e, func() error {
			return atkDo(alice.ctx(t, mSensitive, "stepup-answer", answer), e, mSensitive)
		}, atkStepUp(challenge.ReasonTOTPReused))
	})

	// Redis dies and comes back empty, as after a restart without persistence.
	srv.Kill()
	srv.Restart()

	t.Run("proof replayed after the store lost its data", func(t *testing.T) {
		runAtk(t, e, func() error { return atkDo(withCreds(context.Background(), plain...), e, mPlain) },
			atkProofReason(dpop.ReasonReplayWindow))
	})
	t.Run("proof dated 4 s ahead replayed after the store lost its data", func(t *testing.T) {
		runAtk(t, e, func() error { return atkDo(withCreds(context.Background(), dated...), e, mPlain) },
			atkProofReason(dpop.ReasonReplayWindow))
	})
	t.Run("bound transfer replayed whole after the store lost its data", func(t *testing.T) {
		runAtk(t, e, func() error { return atkDo(withCreds(context.Background(), transfer...), e, mSensitive) },
			atkProofReason(dpop.ReasonReplayWindow))
	})
	if n := e.server.handled(mSensitive); n != 2 {
		t.Fatalf("the transfers ran %d times, want 2", n)
	}
	if store.Losses() != 1 {
		t.Fatalf("the store counted %d losses, want 1", store.Losses())
	}
	floor := store.Floor()
	if want := clock.Now().Add(dpop.DefaultIATFuture + redisstore.DefaultExpiryMargin); floor.Before(want) {
		t.Fatalf("floor %v, want at least now + the future window + the margin (%v)", floor, want)
	}
	// An attacker who also holds the DPoP key waits until fresh proofs are
	// accepted again, and presents the transfer's answer (its challenge
	// has not expired) with a fresh proof: the TOTP step it used is below
	// the floor.
	clock.Set(floor.Add(time.Second).Truncate(time.Second).Add(time.Second))
	t.Run("transfer answer replayed with a fresh proof after the store lost its data", func(t *testing.T) {
		err := atkDo(alice.ctx(t, mSensitive, "stepup-answer", answer), e, mSensitive)
		runAtk(t, e, func() error { return err }, atkStepUp(challenge.ReasonReplayWindow))
		if interceptor.ChallengeFromError(err) == nil {
			t.Errorf("refusal = %v, want a new challenge with it", err)
		}
	})
	// The same attacker uses the code of the next step, which the user
	// typed just before the loss, on a challenge of its own: a TOTP step is
	// recorded as issued when its code is first accepted (one period
	// early), so it is below the floor too.
	t.Run("TOTP code used before the loss, on a fresh challenge after it", func(t *testing.T) {
		ch := atkChallenge(t, e, alice, mSensitive)
		runAtk(t, e, func() error {
			return atkDo(alice.ctx(t, mSensitive, "stepup-answer", atkTOTPAnswer(t, e, alice, ch, ahead)), e, mSensitive)
		}, atkStepUp(challenge.ReasonReplayWindow))
	})
	if n := e.server.handled(mSensitive); n != 2 {
		t.Fatalf("the transfers ran %d times, want 2", n)
	}

	// Once the floor has passed, fresh calls are served: a proof issued
	// after it, and a TOTP step-up whose code could not have been used
	// before the loss (its step is accepted from one period before its own).
	t.Run("control: fresh calls once the floor has passed", func(t *testing.T) {
		runAtk(t, e, func() error { return atkDo(alice.ctx(t, mPlain), e, mPlain) }, refusal{code: codes.OK})
		for clock.Now().Unix()/30-1 <= floor.Unix()/30 {
			clock.Advance(30 * time.Second)
		}
		alice := atkAlice(e) // a token younger than the method's max_token_age
		ch := atkChallenge(t, e, alice, mSensitive)
		runAtk(t, e, func() error {
			return atkDo(alice.ctx(t, mSensitive, "stepup-answer", atkTOTPAnswer(t, e, alice, ch, "")), e, mSensitive)
		}, refusal{code: codes.OK})
		if n := e.server.handled(mSensitive); n != 3 {
			t.Fatalf("the transfers ran %d times, want 3", n)
		}
	})
}
