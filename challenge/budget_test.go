package challenge_test

import (
	"context"
	"crypto"
	"sync"
	"testing"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// wantBudget checks that alice has exactly budget wrong answers left in the
// window: budget-1 wrong TOTP codes, each to a fresh challenge, are refused
// without locking her, and the next one locks her.
func wantBudget(t *testing.T, f *fixture, budget int) {
	t.Helper()
	wrong := &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "000000"}
	if c, _ := challenge.TOTPCode(totpSecret, f.clock.Now()); c == wrong.TOTP {
		wrong.TOTP = "000001"
	}
	for i := 1; i <= budget; i++ {
		call := f.call(bound, transfer(int64(1000+i), "EUR", "x"))
		call.Answer = f.answer(f.client, f.challengeFor(call), wrong)
		out := f.check(call)
		if out.Reason != challenge.ReasonTOTPInvalid || out.Locked != (i == budget) {
			t.Fatalf("wrong answer %d of a budget of %d: reason %s, locked %v (%s)", i, budget, out.Reason, out.Locked, out.Detail)
		}
	}
}

// TestAnswerRefusedAtTheLimitIsRefunded: an answer refused because the
// subject's attempts are all in flight is not a wrong answer, and gives its
// attempt back. Ten correct device-key answers are held in their key
// lookup (a DeviceKeysFunc that waits), so that all ten attempts of alice's
// budget are counted; an eleventh correct answer meanwhile is refused at
// the limit (ATTEMPTS_EXCEEDED, locked). Once the ten pass, the budget is
// whole again. Before, the eleventh kept its attempt: one wrong answer
// fewer locked alice, and every answer refused at the limit during a burst
// of concurrent correct answers spent one more.
func TestAnswerRefusedAtTheLimitIsRefunded(t *testing.T) {
	limit := challenge.DefaultPerSubject
	release := make(chan struct{})
	var held sync.WaitGroup
	var f *fixture
	waiting := challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
		held.Done()
		<-release
		return []crypto.PublicKey{f.device.Public()}, nil
	})
	f = newFixture(t, withOptions(challenge.WithDeviceKeys(waiting)))

	calls := make([]challenge.Call, limit+1)
	for i := range calls {
		calls[i] = f.call(bound, transfer(int64(i), "EUR", "x"))
		ch := f.challengeFor(calls[i])
		calls[i].Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	}
	held.Add(limit)
	outs := make([]*challenge.Outcome, limit)
	var wg sync.WaitGroup
	for i := range limit {
		wg.Go(func() { outs[i] = f.check(calls[i]) })
	}
	held.Wait() // every attempt of the budget is in flight

	out := f.check(calls[limit])
	if !out.Locked || out.Reason != challenge.ReasonAttemptsExceeded || out.Satisfied {
		t.Fatalf("an answer while %d are in flight: %+v, want refused at the limit", limit, out)
	}
	close(release)
	wg.Wait()
	for i, o := range outs {
		if !o.Satisfied {
			t.Fatalf("held answer %d: %+v", i, o)
		}
	}
	wantBudget(t, f, limit)
}

// TestCopiesOfAnAcceptedAnswerAreNotWrong: sending an accepted answer again
// (a client's retry after a lost response, two copies at once) is refused,
// and costs nothing: a TOTP code already used (TOTP_REUSED) and a WebAuthn
// assertion whose counter did not move (WEBAUTHN_COUNTER) are right
// evidence, not guesses. Before, each copy spent one wrong answer.
func TestCopiesOfAnAcceptedAnswerAreNotWrong(t *testing.T) {
	for _, c := range []struct {
		name     string
		evidence func(*fixture, *stepupv1.StepUpChallenge) *challenge.Evidence
		copy     challenge.Reason
	}{
		{"TOTP", func(f *fixture, _ *stepupv1.StepUpChallenge) *challenge.Evidence { return f.totp() }, challenge.ReasonTOTPReused},
		{"WebAuthn", (*fixture).webauthnEvidence, challenge.ReasonWebAuthnCounter},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			call := f.call(bound, transfer(1, "EUR", "x"))
			ch := f.challengeFor(call)
			call.Answer = f.answer(f.client, ch, c.evidence(f, ch))
			if out := f.check(call); !out.Satisfied {
				t.Fatalf("the answer: %+v", out)
			}
			for i := 1; i < challenge.DefaultPerChallenge; i++ {
				out := f.check(call)
				if out.Satisfied || out.Reason != c.copy || out.Locked {
					t.Fatalf("copy %d: %+v, want refused %s", i, out, c.copy)
				}
			}
			wantBudget(t, f, challenge.DefaultPerSubject)
		})
	}
}
