package challenge_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// TestCheckChallenge: the client's check of a challenge, from the side of a
// hostile server: each altered challenge is refused with its mismatch, and
// the genuine one passes, with or without the trusted key set.
func TestCheckChallenge(t *testing.T) {
	f := newFixture(t)
	msg := transfer(12_000, "EUR", "DE89370400440532013000")
	bound := f.challengeFor(f.call(&challenge.Requirement{BindRequest: true}, msg))
	want := challenge.Expected{Method: transferRPC, Request: msg, Thumbprint: f.client.Thumbprint(), Now: f.clock.Now()}
	other := newFixture(t) // another server, another key set
	foreign := other.challengeFor(other.call(&challenge.Requirement{BindRequest: true}, msg))
	edit := func(fn func(ch *stepupv1.StepUpChallenge)) *stepupv1.StepUpChallenge {
		ch := proto.CloneOf(bound)
		fn(ch)
		return ch
	}
	tests := []struct {
		name string
		ch   *stepupv1.StepUpChallenge
		with func(e *challenge.Expected)
		want challenge.Mismatch // "" for accepted
	}{
		{"genuine", bound, nil, ""},
		{"genuine, MAC verified", bound, func(e *challenge.Expected) { e.Trusted = f.keys }, ""},
		{"another server's MAC with the key set trusted", foreign, func(e *challenge.Expected) {
			e.Trusted = f.keys
			e.Thumbprint = other.client.Thumbprint()
		}, challenge.MismatchSignature},
		{"nil challenge", nil, nil, challenge.MismatchMalformed},
		{"not a JWS", edit(func(ch *stepupv1.StepUpChallenge) { ch.Challenge = "garbage" }), nil, challenge.MismatchMalformed},
		{"a grant's header", edit(func(ch *stepupv1.StepUpChallenge) {
			parts := strings.SplitN(ch.Challenge, ".", 2)
			hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
			hdr = []byte(strings.Replace(string(hdr), challenge.ChallengeType, challenge.GrantType, 1))
			ch.Challenge = base64.RawURLEncoding.EncodeToString(hdr) + "." + parts[1]
		}), nil, challenge.MismatchMalformed},
		{"expires_at moved", edit(func(ch *stepupv1.StepUpChallenge) { ch.ExpiresAt = timestamppb.New(f.clock.Now().Add(time.Hour)) }), nil, challenge.MismatchMalformed},
		{"bound_to_request cleared", edit(func(ch *stepupv1.StepUpChallenge) { ch.BoundToRequest = false }), nil, challenge.MismatchMalformed},
		{"another method", bound, func(e *challenge.Expected) { e.Method = "/other.v1.Payments/Pay" }, challenge.MismatchMethod},
		{"displayed method relabelled", edit(func(ch *stepupv1.StepUpChallenge) { ch.Method = "/other.v1.Payments/Pay" }), nil, challenge.MismatchMethod},
		{"another key", bound, func(e *challenge.Expected) { e.Thumbprint = f.attacker.Thumbprint() }, challenge.MismatchKey},
		{"no key given", bound, func(e *challenge.Expected) { e.Thumbprint = "" }, challenge.MismatchKey},
		{"expired", bound, func(e *challenge.Expected) { e.Now = e.Now.Add(time.Hour) }, challenge.MismatchExpired},
		{"genuine, the client's clock 4 minutes behind", bound, func(e *challenge.Expected) { e.Now = e.Now.Add(-4 * time.Minute) }, ""},
		{"expires further ahead than any server issues", bound, func(e *challenge.Expected) { e.Now = e.Now.Add(-time.Hour) }, challenge.MismatchExpired},
		{"another amount", bound, func(e *challenge.Expected) { e.Request = transfer(99_900, "EUR", "DE89370400440532013000") }, challenge.MismatchRequest},
		{"bound, and the call has no request", bound, func(e *challenge.Expected) { e.Request = nil }, challenge.MismatchRequest},
		{"summary text rewritten", edit(func(ch *stepupv1.StepUpChallenge) {
			ch.SummaryText = "approve BankService.Transfer: amount 1.00 EUR, to your own savings"
		}), nil, challenge.MismatchSummary},
		{"summary item dropped", edit(func(ch *stepupv1.StepUpChallenge) { ch.Summary = ch.Summary[1:] }), nil, challenge.MismatchSummary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := want
			if tt.with != nil {
				tt.with(&e)
			}
			err := challenge.CheckChallenge(tt.ch, e)
			var ce *challenge.CheckError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("genuine challenge refused: %v", err)
			case tt.want != "" && (!errors.As(err, &ce) || ce.Mismatch != tt.want):
				t.Fatalf("CheckChallenge = %v, want %s", err, tt.want)
			}
		})
	}
}

// TestCheckChallengeStream: a challenge of a stream (no request, no
// summary items) passes with no request.
func TestCheckChallengeStream(t *testing.T) {
	f := newFixture(t)
	ch := f.challengeFor(f.call(&challenge.Requirement{MaxAge: time.Minute}, nil))
	if err := challenge.CheckChallenge(ch, challenge.Expected{Method: transferRPC, Thumbprint: f.client.Thumbprint(), Now: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
}

// TestFirstAllowedSkipsADisallowedAnswer: a wrapper that hides its factor
// and answers with one the challenge does not allow is passed over.
func TestFirstAllowedSkipsADisallowedAnswer(t *testing.T) {
	ch := &stepupv1.StepUpChallenge{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY}}
	wrongFactor := challenge.ResponderFunc(func(context.Context, *stepupv1.StepUpChallenge) (*challenge.Evidence, error) {
		return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "123456"}, nil
	})
	right := challenge.ResponderFunc(func(context.Context, *stepupv1.StepUpChallenge) (*challenge.Evidence, error) {
		return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_DEVICE_KEY, Device: "x"}, nil
	})
	ev, err := challenge.FirstAllowed(wrongFactor, right).Respond(context.Background(), ch)
	if err != nil || ev.Factor != stepupv1.Factor_FACTOR_DEVICE_KEY {
		t.Fatalf("FirstAllowed = %v, %v", ev, err)
	}
	if _, err := challenge.FirstAllowed(wrongFactor).Respond(context.Background(), ch); err == nil || !strings.Contains(err.Error(), "does not allow") {
		t.Errorf("only a disallowed answer: %v", err)
	}
}
