package interceptor_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: New and NewClient report every option mistake,
// joined, each naming its option; a nil option and a nil clock are
// mistakes; WithClock is one option for both.
func TestOptionMistakesJoined(t *testing.T) {
	_, err := interceptor.New(interceptor.WithLeeway(time.Hour), interceptor.WithClock(nil), nil,
		interceptor.WithTokenCacheSize(-1), interceptor.WithFiles(nil), interceptor.WithStreamRecheck(0))
	testkit.WantMistakes(t, "New", err,
		"interceptor: WithLeeway(1h0m0s): outside 0..5m",
		"interceptor: WithClock: nil clock",
		"interceptor: New: option 3 is nil",
		"interceptor: WithTokenCacheSize(-1): negative",
		"interceptor: WithFiles: nil registry",
		"interceptor: WithStreamRecheck(0s): outside 1ms..1h")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dpop.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = interceptor.NewClient(signer, nil, interceptor.WithResponder(nil), nil, interceptor.WithClock(nil),
		interceptor.WithGrantStore(nil), interceptor.WithTrustedChallengeKeys(nil))
	testkit.WantMistakes(t, "NewClient", err,
		"interceptor: NewClient needs a signer and a token source",
		"interceptor: WithResponder: nil responder",
		"interceptor: NewClient: option 2 is nil",
		"interceptor: WithClock: nil clock",
		"interceptor: WithGrantStore(nil)",
		"interceptor: WithTrustedChallengeKeys: nil key set")

	clock := interceptor.WithClock(time.Now)
	var _ interceptor.Option = clock
	var _ interceptor.ClientOption = clock
}
