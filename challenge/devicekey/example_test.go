package devicekey_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/devicekey"
	"github.com/stepupgrpc/stepup/dpop"
)

// The device-key factor wired into a step-up Service: the user's phone
// holds a key registered for them, and signs the challenge with it
// (challenge.DeviceKeyResponder). A signature by the laptop's DPoP key
// does not count.
func ExampleNew() {
	ctx := context.Background()
	_, phone, _ := ed25519.GenerateKey(rand.Reader)
	registered := devicekey.KeysFunc(func(_ context.Context, subject string) ([]crypto.PublicKey, error) {
		if subject != "alice" {
			return nil, challenge.ErrUnknownSubject
		}
		return []crypto.PublicKey{phone.Public()}, nil
	})
	factor, err := devicekey.New(registered)
	if err != nil {
		panic(err)
	}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	svc, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(factor))

	laptop, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(laptop)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{}}
	for _, device := range []crypto.Signer{laptop, phone} {
		out, _ := svc.Check(ctx, call)
		responder, _ := challenge.DeviceKeyResponder(device)
		ev, _ := responder.Respond(ctx, out.Challenge)
		call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
		out, _ = svc.Check(ctx, call)
		if out.Satisfied {
			fmt.Println("satisfied by", out.Factor)
		} else {
			fmt.Println("refused:", out.Reason)
		}
	}
	// Output:
	// refused: STEPUP_DEVICE_KEY_UNKNOWN
	// satisfied by FACTOR_DEVICE_KEY
}

// New refuses a nil lookup.
func ExampleNew_nil() {
	_, err := devicekey.New(nil)
	fmt.Println(err)
	// Output:
	// devicekey: New: nil Keys
}
