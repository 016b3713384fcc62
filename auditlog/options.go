package auditlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/stepupgrpc/stepup/internal/option"
)

// Option configures a Sink (Open). Options report their mistakes from
// Open, every one of them joined with errors.Join, before it creates a file
// or starts its writer.
type Option interface {
	applySink(*options) error
}

// optionFunc is an Option.
type optionFunc func(*options) error

func (f optionFunc) applySink(o *options) error { return f(o) }

// ClockOption is the option WithClock returns: it sets the time source of a
// Sink (Open). It is an Option.
type ClockOption interface {
	Option
}

// clockOption is the ClockOption; a nil now is reported by Open.
type clockOption struct{ option.Clock }

func (c clockOption) applySink(o *options) error { return c.Set(&o.now) }

type options struct {
	replica  string
	every    int
	interval time.Duration
	maxBytes int64
	queue    int
	delay    time.Duration
	mode     os.FileMode
	copyTo   io.Writer
	log      *slog.Logger
	now      func() time.Time
	ticks    <-chan time.Time // tests: replaces the interval's ticker
	chain    string           // tests: the chain id, instead of a new one
}

// WithReplica names the replica (or process) writing the trail: the chain
// id starts with it, and a new sink links its chain to the newest chain of
// the same replica in the directory. 1 to 64 of A-Z a-z 0-9 . _ -.
// Default: the host name (a pod's name in Kubernetes). Replicas sharing a
// directory need different names.
func WithReplica(name string) Option {
	return optionFunc(func(o *options) error {
		if !validReplica(name) {
			return fmt.Errorf("auditlog: WithReplica: replica name %q: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot", name)
		}
		o.replica = name
		return nil
	})
}

// WithCheckpointEvery writes a checkpoint after every n records. Default
// DefaultCheckpointEvery (1000).
func WithCheckpointEvery(n int) Option {
	return optionFunc(func(o *options) error {
		if n < 1 {
			return fmt.Errorf("auditlog: WithCheckpointEvery(%d): at least 1", n)
		}
		o.every = n
		return nil
	})
}

// WithCheckpointInterval writes a checkpoint every d when records were
// written since the last one, so that no record stays unsigned longer
// than d. Default DefaultCheckpointInterval (1 minute); 0 turns it off.
func WithCheckpointInterval(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d < 0 {
			return fmt.Errorf("auditlog: WithCheckpointInterval(%s): negative", d)
		}
		o.interval = d
		return nil
	})
}

// WithMaxFileSize starts a new file when the current one would exceed n
// bytes: the full file ends with a checkpoint (trigger "rotate") and the
// chain goes on in the next. Default DefaultMaxFileSize (64 MiB); at
// least MinFileSize.
func WithMaxFileSize(n int64) Option {
	return optionFunc(func(o *options) error {
		if n < MinFileSize {
			return fmt.Errorf("auditlog: WithMaxFileSize(%d): at least %d", n, MinFileSize)
		}
		o.maxBytes = n
		return nil
	})
}

// WithQueueSize bounds the events waiting to be written. When the writer
// falls that far behind (a slow or failing disk), Audit waits for room:
// calls slow down rather than decisions going unrecorded. Default
// DefaultQueueSize (65536).
func WithQueueSize(n int) Option {
	return optionFunc(func(o *options) error {
		if n < 1 {
			return fmt.Errorf("auditlog: WithQueueSize(%d): at least 1", n)
		}
		o.queue = n
		return nil
	})
}

// WithBatchDelay sets how long the writer waits, after an event arrives in
// an empty queue, for more before it writes them in one batch (it writes at
// once when batchSize events are queued, and on Flush, Checkpoint and
// Close). The wait keeps a busy server from paying a goroutine wake-up per
// call; an event reaches the file within about d. Default
// DefaultBatchDelay (2ms); 0 writes each event as soon as the writer runs.
func WithBatchDelay(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d < 0 || d > time.Second {
			return fmt.Errorf("auditlog: WithBatchDelay(%s): 0 to 1s", d)
		}
		o.delay = d
		return nil
	})
}

// WithFileMode sets the permissions of new files. Default 0600: records
// name people (subjects) and addresses.
func WithFileMode(perm os.FileMode) Option {
	return optionFunc(func(o *options) error {
		o.mode = perm.Perm()
		return nil
	})
}

// WithCheckpointCopy also writes every checkpoint line to w, after the
// trail's file has it on disk: a second place (another host, a write-once
// bucket, syslog) that someone who can rewrite the trail's directory
// cannot reach. `stepup audit verify --checkpoints` checks the trail
// against such a copy, which catches what the trail alone cannot: its end
// cut off, or a whole chain replaced. Writes to w are serialised; an
// error is logged and does not stop the trail. Default: none.
func WithCheckpointCopy(w io.Writer) Option {
	return optionFunc(func(o *options) error {
		if w == nil {
			return errors.New("auditlog: WithCheckpointCopy: nil writer")
		}
		o.copyTo = w
		return nil
	})
}

// WithLogger sets where the sink reports trouble: write errors, and a
// predecessor chain that did not end with its closing checkpoint. Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) error {
		if l == nil {
			return errors.New("auditlog: WithLogger: nil logger")
		}
		o.log = l
		return nil
	})
}

// WithClock sets the time source of a Sink: the chain id, the headers and
// the checkpoints (records carry their event's Time). Default time.Now; a
// nil clock is a mistake Open reports.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "auditlog", Now: now}}
}
