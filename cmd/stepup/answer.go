package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	totpfactor "github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

func runAnswer(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup answer", "[REFUSAL | -] --key FILE (--totp-secret BASE32 | --totp-code CODE | --device-key FILE) [--method M]",
		"Answers the step-up challenge of a refusal and prints the header to retry\n"+
			"the same call with, \"stepup-answer: <answer>\", for grpcurl -H or buf curl -H.\n"+
			"REFUSAL (the argument, or stdin when it is - or absent) is the refused\n"+
			"call's grpc-status-details-bin trailer (base64), or the error JSON that\n"+
			"buf curl or grpcurl -format-error print. The answer is signed by --key,\n"+
			"the DPoP key the token is bound to; the retry also needs a new proof\n"+
			"(stepup proof) and, for a method that binds its request, the same request.\n"+
			"With --method, a challenge for another method is refused: answer only the\n"+
			"challenge of the call you made.\n")
	keyPath := fs.String("key", "", "the client's DPoP private key `file` (required)")
	totpSecret := fs.String("totp-secret", "", "answer with a TOTP code computed now from this base32 `secret`")
	totpCode := fs.String("totp-code", "", "answer with this TOTP `code`")
	deviceKey := fs.String("device-key", "", "answer with a signature by this registered device key `file`")
	method := fs.String("method", "", "the full `method` of the refused call: the challenge must be for it")
	value, args := valueArg(args)
	if err := cli.Parse(fs, args, "key"); err != nil {
		return err
	}
	given := 0
	for _, v := range []string{*totpSecret, *totpCode, *deviceKey} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return fmt.Errorf("%w: exactly one of --totp-secret, --totp-code and --device-key", cli.ErrUsage)
	}
	value, err := valueOrStdin(e, value)
	if err != nil {
		return err
	}
	ch, err := refusalChallenge(value)
	if err != nil {
		return err
	}
	if *method != "" && ch.GetMethod() != *method {
		return fmt.Errorf("the challenge is for %s, not %s: answer only the challenge of the call you made", cli.Printable(ch.GetMethod()), *method)
	}
	var ev *challenge.Evidence
	switch {
	case *deviceKey != "":
		signer, _, err := cli.ReadSigner(*deviceKey)
		if err != nil {
			return err
		}
		r, err := challenge.DeviceKeyResponder(signer)
		if err != nil {
			return err
		}
		if ev, err = r.Respond(context.Background(), ch); err != nil {
			return err
		}
	default:
		code := *totpCode
		if *totpSecret != "" {
			if code, err = totpfactor.Code(strings.ToUpper(strings.TrimSpace(*totpSecret)), e.now()); err != nil {
				return fmt.Errorf("--totp-secret: %w", err)
			}
		}
		ev = &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code}
	}
	key, _, err := cli.ReadSigner(*keyPath)
	if err != nil {
		return err
	}
	signer, err := dpop.NewSigner(key, dpop.WithClock(e.now))
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	answer, err := challenge.Answer(signer, ch, ev)
	if err != nil {
		return err
	}
	if ch.GetSummaryText() != "" {
		fmt.Fprintf(e.stderr, "approving %s: %s\n", cli.Printable(ch.GetMethod()), cli.Printable(ch.GetSummaryText()))
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", interceptor.MetadataStepUpAnswer, answer)
	return nil
}

// refusalChallenge finds the step-up challenge of a refusal given as a
// base64 grpc-status-details-bin, the JSON of a google.rpc.Status
// (grpcurl -format-error), or buf curl's error JSON.
func refusalChallenge(v string) (*stepupv1.StepUpChallenge, error) {
	if v == "" {
		return nil, fmt.Errorf("%w: no refusal to answer", cli.ErrUsage)
	}
	st := &spb.Status{}
	switch {
	case strings.HasPrefix(v, "{"):
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(v), st); err != nil {
			// buf curl: {"code": "unauthenticated", "details": [{"type": "stepup.v1.StepUpChallenge", "value": base64}]}
			var connect struct {
				Details []struct{ Type, Value string }
			}
			if json.Unmarshal([]byte(v), &connect) != nil {
				return nil, fmt.Errorf("the refusal is JSON but neither a google.rpc.Status nor buf curl's error: %v", err)
			}
			for _, d := range connect.Details {
				if d.Type == string((&stepupv1.StepUpChallenge{}).ProtoReflect().Descriptor().FullName()) {
					b, err := decodeBase64(d.Value)
					ch := &stepupv1.StepUpChallenge{}
					if err != nil || proto.Unmarshal(b, ch) != nil {
						return nil, errors.New("the refusal's StepUpChallenge detail does not decode")
					}
					return ch, nil
				}
			}
			return nil, errors.New("the refusal carries no step-up challenge (stepup inspect says why it was refused)")
		}
	default:
		b, err := decodeBase64(v)
		if err != nil || proto.Unmarshal(b, st) != nil {
			return nil, errors.New("the refusal is neither base64 grpc-status-details-bin nor JSON")
		}
	}
	for _, a := range st.GetDetails() {
		ch := &stepupv1.StepUpChallenge{}
		if a.MessageIs(ch) {
			if err := a.UnmarshalTo(ch); err != nil {
				return nil, fmt.Errorf("the refusal's StepUpChallenge detail does not decode: %w", err)
			}
			return ch, nil
		}
	}
	return nil, errors.New("the refusal carries no step-up challenge (stepup inspect says why it was refused)")
}
