package challenge

import (
	"errors"
	"fmt"

	"github.com/stepupgrpc/stepup/challenge/factor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Factor verifies one kind of second-factor evidence (factor.Factor). The
// Service calls it for an answer whose challenge, key, method and request
// verified, after the answer was counted against the attempt limits; it
// knows nothing of how the factor works. The packages challenge/totp,
// challenge/devicekey, challenge/approval and challenge/webauthn implement
// the built-in factors, each enabled with WithFactor.
type Factor = factor.Factor

// FactorEvidence is what a Factor verifies (factor.Evidence).
type FactorEvidence = factor.Evidence

// FactorPrompter is implemented by a Factor that tells the client how to
// answer a challenge: the WebAuthn factor's request options, sent in
// StepUpChallenge.webauthn_request_options (factor.Prompter).
type FactorPrompter = factor.Prompter

// WithFactor enables factor f, such as the WebAuthn factor of the package
// challenge/webauthn. Of two factors of the same kind (the deprecated
// options included) the later replaces the earlier, as with every other
// option. Default: none; NewService needs at least one factor.
func WithFactor(f Factor) Option {
	return optionFunc(func(c *config) error {
		if f == nil {
			return errors.New("challenge: WithFactor: nil Factor")
		}
		return c.addFactor(f)
	})
}

// OptionError is an Option that makes NewService fail with err: for a
// package that builds an Option (a factor's) whose own construction failed.
// It has no default: it is only the mistake it carries.
func OptionError(err error) Option {
	return optionFunc(func(*config) error {
		if err == nil {
			return errors.New("challenge: OptionError: nil error")
		}
		return err
	})
}

func (c *config) addFactor(f Factor) error {
	k := f.Factor()
	switch k {
	case stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_WEBAUTHN:
		// Their answers are guesses the attempt limits count; a Stateful
		// factor's answers are not counted (checkStateful), so a Stateful
		// factor of these kinds would get unlimited guesses.
		if _, ok := f.(Stateful); ok {
			return fmt.Errorf("challenge: a Factor for %v must not be a Stateful factor: its answers would escape the attempt limits", k)
		}
	case stepupv1.Factor_FACTOR_APPROVAL:
		// A state of the challenge, not a check of evidence alone: only a
		// Stateful factor can answer it.
		if _, ok := f.(Stateful); !ok {
			return fmt.Errorf("challenge: a Factor for %v must be a Stateful factor (challenge/approval)", k)
		}
	default:
		return fmt.Errorf("challenge: a Factor cannot verify %v", k)
	}
	for i, g := range c.plugged {
		if g.Factor() == k {
			// An option given twice replaces the first, as every other
			// option does.
			c.plugged[i] = f
			return nil
		}
	}
	c.plugged = append(c.plugged, f)
	return nil
}

// factor returns the configured Factor for k, nil when none.
func (c *config) factor(k stepupv1.Factor) Factor {
	for _, f := range c.plugged {
		if f.Factor() == k {
			return f
		}
	}
	return nil
}
