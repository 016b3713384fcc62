package redisstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/option"
)

const (
	// DefaultPrefix is the default prefix of every key the store writes.
	DefaultPrefix = "stepup:"
	// DefaultTimeout is the default time limit of one store operation.
	DefaultTimeout = 250 * time.Millisecond
	// DefaultExpiryMargin is the default time added to every expiry.
	DefaultExpiryMargin = time.Second
	// setupTimeout bounds the checks New runs against Redis.
	setupTimeout = 5 * time.Second
	// epochSetupTimeout bounds New's reading (and writing) of the epoch
	// records: on Redis Cluster one command for each of its 16 384 slots,
	// in one pipeline (a few hundred milliseconds; seconds on a loaded
	// machine under the race detector).
	epochSetupTimeout = 30 * time.Second
	// maxFutureWindow is the largest WithFutureWindow, the largest future
	// iat window dpop.WithIATWindow accepts.
	maxFutureWindow = 5 * time.Minute
)

// Option configures a Store. Options report their mistakes from New, every
// one of them joined with errors.Join, before it connects to Redis.
type Option interface {
	applyStore(*config) error
}

// optionFunc is an Option.
type optionFunc func(*config) error

func (f optionFunc) applyStore(c *config) error { return f(c) }

// ClockOption is the option WithClock returns: it sets the time source of a
// Store (New). It is an Option.
type ClockOption interface {
	Option
}

// clockOption is the ClockOption; a nil now is reported by New.
type clockOption struct{ option.Clock }

func (o clockOption) applyStore(c *config) error { return o.Set(&c.now) }

type config struct {
	prefix        string
	timeout       time.Duration
	margin        time.Duration
	allowEviction bool
	skipPolicy    bool
	acks          int
	ackTimeout    time.Duration
	future        time.Duration
	now           func() time.Time
}

// WithPrefix sets the prefix of every key, so that several applications (or
// several independent Stepup deployments) can share one Redis. Replicas that
// must share state must use the same prefix. On Redis Cluster, do not put a
// hash tag ({...}) in it: every key would land on one shard.
// Default: DefaultPrefix ("stepup:"); the empty prefix is allowed.
func WithPrefix(p string) Option {
	return optionFunc(func(c *config) error {
		c.prefix = p
		return nil
	})
}

// WithTimeout sets the time limit of each operation (d > 0), on top of the
// caller's context: past it the operation fails, and the call is refused.
// Keep it well under the RPC deadlines of the clients.
// Default: DefaultTimeout (250 ms).
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("redisstore: WithTimeout(%v): the timeout must be positive", d)
		}
		c.timeout = d
		return nil
	})
}

// WithExpiryMargin sets how much longer than asked Redis keeps each key
// (d >= 0). Expiries are absolute times from the replicas' clocks, applied
// by Redis's clock: the margin covers a Redis clock running up to d ahead.
// A longer life is always safe (single-use keys and counters are simply
// remembered longer); a shorter one is not. Default: DefaultExpiryMargin
// (one second).
func WithExpiryMargin(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return fmt.Errorf("redisstore: WithExpiryMargin(%v): the margin must not be negative", d)
		}
		c.margin = d
		return nil
	})
}

// InsecureAllowEviction lets New accept a Redis whose maxmemory-policy is
// not noeviction. Such a Redis drops live keys when it is full, and the
// store then fails open: a dropped single-use key can be replayed. Only for
// tests, or for a Redis that can never fill up. Default: such a Redis is
// refused.
func InsecureAllowEviction() Option {
	return optionFunc(func(c *config) error {
		c.allowEviction = true
		return nil
	})
}

// SkipPolicyCheck makes New and Check skip reading the maxmemory-policy, for
// managed services that permit neither CONFIG GET nor INFO. The operator
// vouches that the policy is noeviction (usually a setting of the
// service's parameter group). Default: the policy is read and checked.
func SkipPolicyCheck() Option {
	return optionFunc(func(c *config) error {
		c.skipPolicy = true
		return nil
	})
}

// WithDurableWrites makes every write (a recorded proof, a consumed
// challenge or TOTP step, an attempt counter, a revocation) wait until at
// least replicas replicas of the primary have it, with Redis's WAIT, for at
// most wait; with fewer acknowledgements the operation fails with
// ErrNotDurable and the call is refused (fail closed). Without it, Redis
// replicates asynchronously: a primary that dies right after acknowledging
// a write can take it along, and a replica promoted in its place accepts the
// proof or answer once more. docs/REPLICAS.md measures that window.
//
// replicas must be at least 1, and wait shorter than the operation timeout
// (WithTimeout). Use the number of replicas of each primary. With fewer, a
// failover while the replaced primary still runs (SENTINEL FAILOVER, a
// partition, or a loaded Sentinel failing over the primary it has just
// promoted after a crash) lets a replica still attached to it acknowledge
// writes the new primary never gets: docs/REPLICAS.md has the loss
// measured after a crash and the sequence the Sentinels logged. The cost
// is availability: with a replica down, every write is refused. Each write
// costs one more round trip to a replica. WAIT does not make Redis strongly consistent (a primary
// partitioned away can still accept writes that are later lost, see
// min-replicas-to-write), but an acknowledged single use is no longer lost
// with one node. Default: off.
func WithDurableWrites(replicas int, wait time.Duration) Option {
	return optionFunc(func(c *config) error {
		if replicas < 0 || (replicas > 0 && wait <= 0) {
			return durableWritesError(replicas, wait, "")
		}
		c.acks, c.ackTimeout = replicas, wait
		return nil
	})
}

// WithFutureWindow sets how far after the moment it is recorded a
// single-use key's issue time may lie: for DPoP proofs, the future iat
// window of the verifiers that share the store (dpop.WithIATWindow, default
// dpop.DefaultIATFuture); the step-up service's keys are never issued
// later than they are recorded. When the store finds that Redis lost data,
// it refuses every key issued up to the moment it noticed plus this window
// and the expiry margin (see Store.Insert): a proof dated that far ahead and
// recorded just before the loss is refused too. A longer window only refuses
// more, for that much longer after a loss. d must be in [0, 5m].
// Default: dpop.DefaultIATFuture (5 s).
func WithFutureWindow(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 || d > maxFutureWindow {
			return fmt.Errorf("redisstore: WithFutureWindow(%v): must be in [0, %v]", d, maxFutureWindow)
		}
		c.future = d
		return nil
	})
}

// WithClock sets the time source of a Store: the floor it raises when
// Redis lost data, and the expiry of pending approvals it lists. Single-use keys, counters and values expire at the times their
// callers give. Default time.Now; a nil clock is a mistake New reports.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "redisstore", Now: now}}
}

// newConfig applies opts to the defaults and returns every mistake, joined.
func newConfig(opts []Option) (config, error) {
	c := config{prefix: DefaultPrefix, timeout: DefaultTimeout, margin: DefaultExpiryMargin,
		future: dpop.DefaultIATFuture, now: time.Now}
	err := option.Apply("redisstore", "New", opts, func(o Option) error { return o.applyStore(&c) })
	if c.acks > 0 && c.ackTimeout >= c.timeout {
		err = errors.Join(err, durableWritesError(c.acks, c.ackTimeout, fmt.Sprintf(" (%v)", c.timeout)))
	}
	return c, err
}

// durableWritesError is WithDurableWrites' mistake; timeout is the
// operation timeout when the wait is too long for it.
func durableWritesError(replicas int, wait time.Duration, timeout string) error {
	return fmt.Errorf("redisstore: WithDurableWrites(%d, %v): needs at least one replica and a wait "+
		"longer than 0 and shorter than the operation timeout%s", replicas, wait, timeout)
}
