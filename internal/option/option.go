// Package option applies the functional options of the module's
// constructors the one way they all share: every option reports its own
// mistake, and the constructor returns all of them, joined, before it
// builds anything.
package option

import (
	"errors"
	"fmt"
	"time"
)

// Apply calls apply with each of opts, in order, and returns every
// mistake joined with errors.Join (nil when there is none). A nil option
// is a mistake too, "pkg: ctor: option n is nil".
func Apply[O any](pkg, ctor string, opts []O, apply func(O) error) error {
	var errs []error
	for i, o := range opts {
		if any(o) == nil {
			errs = append(errs, fmt.Errorf("%s: %s: option %d is nil", pkg, ctor, i+1))
			continue
		}
		if err := apply(o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clock is the value of a package's WithClock option: the clock, and the
// package that names the mistake of a nil one.
type Clock struct {
	Pkg string
	Now func() time.Time
}

// Set sets *dst to the clock, or returns "pkg: WithClock: nil clock".
func (c Clock) Set(dst *func() time.Time) error {
	if c.Now == nil {
		return fmt.Errorf("%s: WithClock: nil clock", c.Pkg)
	}
	*dst = c.Now
	return nil
}
