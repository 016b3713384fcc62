package metrics

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/reflect/protoregistry"
)

// Option configures the Metrics (New). Options report their mistakes from
// New, every one of them joined with errors.Join, before anything is
// registered.
type Option interface {
	applyMetrics(*options) error
}

// optionFunc is an Option.
type optionFunc func(*options) error

func (f optionFunc) applyMetrics(o *options) error { return f(o) }

type options struct {
	files     *protoregistry.Files
	namespace string
	buckets   []float64
}

// WithFiles sets the registry whose methods get their own method label
// (the Guard's, interceptor.WithFiles). Default protoregistry.GlobalFiles.
func WithFiles(files *protoregistry.Files) Option {
	return optionFunc(func(o *options) error {
		if files == nil {
			return errors.New("metrics: WithFiles: nil registry")
		}
		o.files = files
		return nil
	})
}

// WithNamespace sets the metrics' prefix. Default "stepup".
func WithNamespace(ns string) Option {
	return optionFunc(func(o *options) error {
		o.namespace = ns
		return nil
	})
}

// WithBuckets sets the latency histograms' buckets, in seconds, in
// increasing order. Default DefaultBuckets: 50 µs to 1 s, a verification's
// range.
func WithBuckets(b []float64) Option {
	return optionFunc(func(o *options) error {
		if len(b) == 0 {
			return errors.New("metrics: WithBuckets: no bucket")
		}
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				return fmt.Errorf("metrics: WithBuckets: %v is not in increasing order", b)
			}
		}
		o.buckets = b
		return nil
	})
}
