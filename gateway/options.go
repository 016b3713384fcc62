package gateway

import (
	"errors"
	"log/slog"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/option"
)

// Option configures a gateway (New, Load). Options report their mistakes
// from New and Load, every one of them joined with errors.Join (and with
// the configuration's), before anything is built.
type Option interface {
	applyGateway(*options) error
}

// optionFunc is an Option.
type optionFunc func(*options) error

func (f optionFunc) applyGateway(o *options) error { return f(o) }

// ClockOption is the option WithClock returns: it sets the time source of a
// gateway (New, Load). It is an Option.
type ClockOption interface {
	Option
}

// clockOption is the ClockOption; a nil now is reported by New and Load.
type clockOption struct{ option.Clock }

func (c clockOption) applyGateway(o *options) error { return c.Set(&o.now) }

type options struct {
	log       *slog.Logger
	sink      interceptor.AuditSink
	now       func() time.Time
	guardOpts []interceptor.Option
	store     challenge.Store
}

// WithLogger sets the logger of the gateway's own events (start, warnings,
// shutdown). Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) error {
		if l == nil {
			return errors.New("gateway: WithLogger: nil logger")
		}
		o.log = l
		return nil
	})
}

// WithAuditSink sets where decisions go. Default: JSON lines on the logger.
func WithAuditSink(s interceptor.AuditSink) Option {
	return optionFunc(func(o *options) error {
		if s == nil {
			return errors.New("gateway: WithAuditSink: nil sink")
		}
		o.sink = s
		return nil
	})
}

// WithClock sets the time source of a gateway: the assertions and the
// audit of backend failures (the Guard's clock is set with
// WithGuardOptions). Default time.Now; a nil clock is a mistake New and
// Load report.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "gateway", Now: now}}
}

// WithStore sets the shared store in place of redis_url (a store built in
// Go, such as a Redis Cluster client's). Default: the Redis store redis_url
// names, else in-process stores (one replica only).
func WithStore(s challenge.Store) Option {
	return optionFunc(func(o *options) error {
		if s == nil {
			return errors.New("gateway: WithStore: nil store")
		}
		o.store = s
		return nil
	})
}

// WithGuardOptions appends options to the Guard the gateway builds (after
// its own, so they win where they overlap); their mistakes are the Guard's
// (interceptor.New). Default: none.
func WithGuardOptions(opts ...interceptor.Option) Option {
	return optionFunc(func(o *options) error {
		o.guardOpts = append(o.guardOpts, opts...)
		return nil
	})
}
