package auditlog

import "time"

// WithTicks replaces the checkpoint interval's ticker by ticks, so that
// tests decide when the interval passes.
func WithTicks(ticks <-chan time.Time) Option {
	return optionFunc(func(o *options) error {
		o.ticks = ticks
		return nil
	})
}

// WithChainID sets the chain id (the test vectors' fixed one).
func WithChainID(id string) Option {
	return optionFunc(func(o *options) error {
		o.chain = id
		return nil
	})
}

// WithTinyFiles sets a file size limit below MinFileSize, so that a few
// records make a trail of several files.
func WithTinyFiles(n int64) Option {
	return optionFunc(func(o *options) error {
		o.maxBytes = n
		return nil
	})
}
