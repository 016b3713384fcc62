package totp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge/totp"
)

// TestNewRefusesMistakes: every parameter mistake is New's error.
func TestNewRefusesMistakes(t *testing.T) {
	secrets := totp.SecretsFunc(nil)
	for name, tc := range map[string]struct {
		secrets totp.Secrets
		opts    totp.Options
		want    string
	}{
		"nil secrets":     {nil, totp.Options{}, "nil Secrets"},
		"5 digits":        {secrets, totp.Options{Digits: 5}, "digits 5"},
		"11 digits":       {secrets, totp.Options{Digits: 11}, "digits 11"},
		"fractional step": {secrets, totp.Options{Period: 1500 * time.Millisecond}, "whole seconds"},
		"skew 3":          {secrets, totp.Options{Skew: 3}, "skew 3"},
		"md5":             {secrets, totp.Options{Algorithm: 2}, "algorithm"},
	} {
		if _, err := totp.New(tc.secrets, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, err := totp.New(secrets, totp.Options{Digits: 8, Skew: totp.NoSkew}); err != nil {
		t.Fatalf("the control is refused: %v", err)
	}
}
