package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// responder answers step-up challenges with the device key of --device-key,
// or else with a TOTP code typed on stdin.
func (c *connFlags) responder(e *env) (challenge.Responder, error) {
	if c.deviceKey != "" {
		key, err := loadSigner(c.deviceKey)
		if err != nil {
			return nil, fmt.Errorf("--device-key: %w", err)
		}
		device, err := challenge.DeviceKeyResponder(key)
		if err != nil {
			return nil, fmt.Errorf("--device-key: %w", err)
		}
		return challenge.ResponderFunc(func(ctx context.Context, ch *stepupv1.StepUpChallenge) (*challenge.Evidence, error) {
			showChallenge(e.stderr, ch)
			if err := allowed(ch, stepupv1.Factor_FACTOR_DEVICE_KEY); err != nil {
				return nil, err
			}
			fmt.Fprintln(e.stderr, "approving with the device key")
			return device.Respond(ctx, ch)
		}), nil
	}
	return challenge.TOTPResponder(func(ctx context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		showChallenge(e.stderr, ch)
		if err := allowed(ch, stepupv1.Factor_FACTOR_TOTP); err != nil {
			return "", err
		}
		fmt.Fprint(e.stderr, "TOTP code: ")
		line, err := readLine(ctx, e.stdin)
		if !e.stdinIsTerminal || err != nil {
			fmt.Fprintln(e.stderr) // no line feed was echoed after the prompt
		}
		if err != nil {
			return "", fmt.Errorf("reading the TOTP code: %w", err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			return "", errors.New("no TOTP code entered")
		}
		return code, nil
	}), nil
}

// showChallenge prints what the user is asked to approve: the one-line
// summary, then each summarised field on a line of its own.
func showChallenge(w io.Writer, ch *stepupv1.StepUpChallenge) {
	fmt.Fprintf(w, "step-up required: %s\n", ch.GetSummaryText())
	for _, it := range ch.GetSummary() {
		label := it.GetLabel()
		if label == "" {
			label = it.GetField()
		}
		fmt.Fprintf(w, "  %s: %s\n", label, it.GetValue())
	}
}

// allowed refuses early, with a clear message, a factor that the challenge
// does not accept (the server would refuse the answer).
func allowed(ch *stepupv1.StepUpChallenge, f stepupv1.Factor) error {
	if len(ch.GetFactors()) == 0 || slices.Contains(ch.GetFactors(), f) {
		return nil
	}
	names := make([]string, len(ch.GetFactors()))
	for i, g := range ch.GetFactors() {
		names[i] = challenge.FactorName(g)
	}
	return fmt.Errorf("the server does not accept %s for this call (it accepts: %s)",
		challenge.FactorName(f), strings.Join(names, ", "))
}

// readLine reads one line from r, or gives up when ctx is done (Ctrl-C at
// the prompt). A last line without a line feed counts.
func readLine(ctx context.Context, r interface{ ReadString(byte) (string, error) }) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			// Not io.EOF itself: wrapped by the caller, it must not read
			// as the end of a stream.
			err = nil
			if line == "" {
				err = errors.New("stdin closed")
			}
		}
		done <- result{line, err}
	}()
	select {
	case res := <-done:
		return res.line, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
