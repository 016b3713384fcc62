package challenge

import (
	"errors"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/internal/option"
)

// Defaults and bounds of the Service options.
const (
	// DefaultChallengeTTL is how long a challenge is accepted.
	DefaultChallengeTTL = 2 * time.Minute
	// MaxChallengeTTL is the longest accepted challenge lifetime: a
	// challenge is answered by a person now, not later.
	MaxChallengeTTL = 5 * time.Minute
	// DefaultStoreSize is the size of the default MemoryStore.
	DefaultStoreSize = 100_000
	// DefaultPerChallenge is how many answers one challenge accepts.
	DefaultPerChallenge = 3
	// DefaultPerSubject is how many wrong answers a subject may give in
	// one window before it is locked until the window ends.
	DefaultPerSubject = 10
	// DefaultAttemptWindow is the length of the per-subject window.
	DefaultAttemptWindow = 15 * time.Minute
	// DefaultMaxGrantAge caps the lifetime of a grant, whatever the
	// requirement's MaxAge. It is also the longest WithMaxGrantAge: a grant
	// revocation is remembered that long (plus a minute), whoever writes
	// it, so no revoked grant can outlive its revocation.
	DefaultMaxGrantAge = 24 * time.Hour
)

// Option configures a Service. Options report their mistakes from
// NewService, every one of them joined with errors.Join, before anything is
// built.
type Option interface {
	applyService(*config) error
}

// optionFunc is an Option.
type optionFunc func(*config) error

func (f optionFunc) applyService(c *config) error { return f(c) }

// ClockOption is the option WithClock returns: it sets the time source of a
// Service (NewService). It is an Option.
type ClockOption interface {
	Option
}

// clockOption is the ClockOption; a nil now is reported by NewService.
type clockOption struct{ option.Clock }

func (o clockOption) applyService(c *config) error { return o.Set(&c.now) }

type config struct {
	keys         *KeySet
	store        Store
	now          func() time.Time
	ttl          time.Duration
	plugged      []Factor // WithFactor, and the deprecated options
	perChallenge int
	perSubject   int
	window       time.Duration
	maxGrantAge  time.Duration
	display      DisplayFields
}

// WithKeys sets the keys that sign and verify challenges and grants.
// Required: there is no default, and NewService fails without it. Every
// replica must use the same KeySet (see LoadKeySet).
func WithKeys(k *KeySet) Option {
	return optionFunc(func(c *config) error {
		if k == nil {
			return errors.New("challenge: WithKeys: nil KeySet")
		}
		c.keys = k
		return nil
	})
}

// WithStore sets the shared state store. Default: a MemoryStore of
// DefaultStoreSize entries, which is correct for a single replica only.
func WithStore(s Store) Option {
	return optionFunc(func(c *config) error {
		if s == nil {
			return errors.New("challenge: WithStore: nil Store")
		}
		c.store = s
		return nil
	})
}

// WithClock sets the time source of a Service (challenge and grant
// expiry, attempt windows, revocations). Give the same clock to
// interceptor.WithClock and dpop.WithClock. Default time.Now; a nil clock
// is a mistake NewService reports.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "challenge", Now: now}}
}

// WithChallengeTTL sets how long a challenge is accepted after it is
// issued. Default DefaultChallengeTTL (2 minutes); at least one second and
// at most MaxChallengeTTL (5 minutes).
func WithChallengeTTL(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < time.Second || d > MaxChallengeTTL {
			return fmt.Errorf("challenge: WithChallengeTTL(%s): must be between 1s and %s", d, MaxChallengeTTL)
		}
		c.ttl = d
		return nil
	})
}

// WithAttemptLimits bounds guessing. perChallenge is how many answers one
// challenge accepts (default 3). perSubject is how many wrong answers a
// subject may give per window (default 10, window default 15 minutes);
// when reached, Check refuses with StateLocked and no challenge until
// the window ends. Windows are fixed (aligned on multiples of window since
// the Unix epoch), so across a window boundary a subject may give up to
// twice perSubject wrong answers in quick succession. Attempts are counted
// before the factor is verified, so concurrent guesses cannot exceed the
// limits.
func WithAttemptLimits(perChallenge, perSubject int, window time.Duration) Option {
	return optionFunc(func(c *config) error {
		if perChallenge < 1 || perSubject < 1 || window < time.Second {
			return fmt.Errorf("challenge: WithAttemptLimits(%d, %d, %s): limits must be positive and the window at least 1s", perChallenge, perSubject, window)
		}
		c.perChallenge, c.perSubject, c.window = perChallenge, perSubject, window
		return nil
	})
}

// WithMaxGrantAge caps the lifetime of a grant, from 1s to
// DefaultMaxGrantAge (the default, 24 hours): a grant lasts the
// requirement's MaxAge, or this, whichever is shorter. A longer age is
// refused: RevokeGrants remembers a revocation for DefaultMaxGrantAge plus
// a minute, whichever Service or NewRevocations writes it on a shared
// store, and a longer-lived grant would work again after that.
func WithMaxGrantAge(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < time.Second || d > DefaultMaxGrantAge {
			return fmt.Errorf("challenge: WithMaxGrantAge(%s): must be between 1s and %s (DefaultMaxGrantAge)", d, DefaultMaxGrantAge)
		}
		c.maxGrantAge = d
		return nil
	})
}

// WithDisplayFields shows the fields d declares in challenge summaries,
// beyond those marked with (stepup.v1.display): for requests whose .proto
// cannot be annotated (docs/PROTOCOL.md §13.4). Clients must declare the
// same fields (interceptor.WithDisplayFields), or they refuse the
// challenges. Default: none.
func WithDisplayFields(d DisplayFields) Option {
	return optionFunc(func(c *config) error {
		for name, v := range d {
			if v == nil {
				return fmt.Errorf("challenge: WithDisplayFields: %s has a nil Display", name)
			}
		}
		c.display = d
		return nil
	})
}
