package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
)

// trail is the demo's tamper-evident audit trail: the bank's decisions,
// hash-chained, with checkpoints signed by a key of the demo's own.
type trail struct {
	dir  string
	sink *auditlog.Sink
	keys *auditlog.KeySet
}

// openTrail starts the trail in a new temporary directory.
func openTrail(now func() time.Time) (*trail, error) {
	dir, err := os.MkdirTemp("", "stepup-demo-audit-")
	if err != nil {
		return nil, err
	}
	key, err := auditlog.GenerateKey("demo-audit-1")
	if err != nil {
		return nil, err
	}
	keys, err := key.PublicKeySet()
	if err != nil {
		return nil, err
	}
	sink, err := auditlog.Open(dir, key, auditlog.WithReplica("demo-bank"), auditlog.WithClock(now), auditlog.WithCheckpointEvery(8),
		auditlog.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &trail{dir: dir, sink: sink, keys: keys}, nil
}

// remove deletes the trail's directory.
func (t *trail) remove() { os.RemoveAll(t.dir) }

// verifyAndReport closes the trail (its closing checkpoint), verifies it as
// `stepup audit verify` does, and prints the report a reviewer reads.
func (d *demo) verifyAndReport(t *trail) {
	d.section("7. The audit trail: every decision above, hash-chained, checkpoints signed (key demo-audit-1)")
	if err := t.sink.Close(); err != nil {
		d.fail("closing the trail: %v", err)
		return
	}
	res, err := auditlog.Verify([]string{t.dir}, auditlog.VerifyOptions{Keys: t.keys})
	d.steps++
	if err != nil || !res.OK() || len(res.Chains) != 1 {
		d.fail("the trail does not verify: %v %v", err, res)
		return
	}
	c := res.Chains[0]
	fmt.Fprintf(d.out, "   stepup audit verify: %d records in %d file, %d valid checkpoints, closed: verified\n", c.Records, len(c.Files), c.Checkpoints)
	records, err := auditlog.ReadRecords([]string{t.dir})
	if err != nil {
		d.fail("reading the trail: %v", err)
		return
	}
	rep := auditlog.NewReport(records, auditlog.ReportOptions{})
	d.check(len(rep.Exceptions.WithoutStepUp) == 0, "an allowed step-up call without step-up evidence")
	d.check(len(rep.Exceptions.Tokens) == 1, "the report does not show alice's token used from mallory's tool")
	fmt.Fprintf(d.out, "   stepup audit report:\n\n")
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		d.fail("%v", err)
		return
	}
	indent(d.out, b.String(), "   ")
}

func indent(w io.Writer, text, by string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintln(w, by+l)
	}
}
