package challenge_test

import (
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: NewService reports every option mistake,
// joined, each naming its option, with the missing keys and factor; a nil
// option and a nil clock are mistakes (NewService stopped at the first one
// before).
func TestOptionMistakesJoined(t *testing.T) {
	_, err := challenge.NewService(challenge.WithChallengeTTL(time.Hour), challenge.WithClock(nil), nil,
		challenge.WithStore(nil), challenge.WithAttemptLimits(0, 1, time.Minute), challenge.WithFactor(nil))
	testkit.WantMistakes(t, "NewService", err,
		"challenge: WithChallengeTTL(1h0m0s): must be between 1s and 5m0s",
		"challenge: WithClock: nil clock",
		"challenge: NewService: option 3 is nil",
		"challenge: WithStore: nil Store",
		"challenge: WithAttemptLimits(0, 1, 1m0s)",
		"challenge: WithFactor: nil Factor",
		"challenge: WithKeys is required",
		"challenge: no factor configured")
	var _ challenge.Option = challenge.WithClock(time.Now)
}
