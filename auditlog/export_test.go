package auditlog

import "time"

// WithTicks replaces the checkpoint interval's ticker by ticks, so that
// tests decide when the interval passes.
func WithTicks(ticks <-chan time.Time) Option {
	return func(o *options) error {
		o.ticks = ticks
		return nil
	}
}
