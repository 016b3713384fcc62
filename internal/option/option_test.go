package option_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/internal/option"
)

type opt interface{ apply(*int) error }

type set int

func (s set) apply(n *int) error {
	if s < 0 {
		return errors.New("test: WithN: negative")
	}
	*n = int(s)
	return nil
}

func TestApplyJoinsEveryMistake(t *testing.T) {
	var n int
	err := option.Apply("test", "New", []opt{set(-1), nil, set(7), set(-2)}, func(o opt) error { return o.apply(&n) })
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if got := strings.Count(msg, "test: WithN: negative"); got != 2 {
		t.Errorf("%d range mistakes in %q, want 2", got, msg)
	}
	if !strings.Contains(msg, "test: New: option 2 is nil") {
		t.Errorf("no nil option mistake in %q", msg)
	}
	if n != 7 {
		t.Errorf("the valid option was not applied: n = %d", n)
	}
	if err := option.Apply("test", "New", []opt{set(1)}, func(o opt) error { return o.apply(&n) }); err != nil || n != 1 {
		t.Errorf("Apply = %v, n = %d; want nil, 1", err, n)
	}
}

func TestClockRefusesNil(t *testing.T) {
	var now func() time.Time
	if err := (option.Clock{Pkg: "test"}).Set(&now); err == nil || err.Error() != "test: WithClock: nil clock" {
		t.Errorf("Set(nil clock) = %v", err)
	}
	if err := (option.Clock{Pkg: "test", Now: time.Now}).Set(&now); err != nil || now == nil {
		t.Errorf("Set(time.Now) = %v, clock set: %t", err, now != nil)
	}
}
