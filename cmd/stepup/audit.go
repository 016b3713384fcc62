package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/cmd/cli"
)

// verifyExit is the exit code of `stepup audit verify` for each kind of
// problem (docs/CLI.md): when several are found, the first kind in
// auditlog's order decides (Result.Worst).
var verifyExit = map[auditlog.ProblemKind]int{
	auditlog.ProblemUnverifiedTail: 3,
	auditlog.ProblemModified:       4,
	auditlog.ProblemDeleted:        5,
	auditlog.ProblemInserted:       6,
	auditlog.ProblemReordered:      7,
	auditlog.ProblemMissingFile:    8,
	auditlog.ProblemUnknownKey:     9,
	auditlog.ProblemTorn:           10,
}

// verifyOrder lists the kinds of problems in the order of their exit codes
// precedence.
var verifyOrder = []auditlog.ProblemKind{auditlog.ProblemModified, auditlog.ProblemDeleted, auditlog.ProblemInserted,
	auditlog.ProblemReordered, auditlog.ProblemMissingFile, auditlog.ProblemUnknownKey, auditlog.ProblemTorn, auditlog.ProblemUnverifiedTail}

func runAudit(ctx context.Context, e *env, args []string) error {
	sub := cli.Program[*env]{
		Name: "stepup audit",
		Description: "The tamper-evident audit trail of package auditlog (docs/AUDITLOG.md): check it,\n" +
			"and report what it shows (docs/COMPLIANCE.md).\n",
		Commands: []cli.Command[*env]{
			{Name: "verify", Summary: "check a trail's chains, hashes and signed checkpoints; a distinct exit code per kind of tampering", Run: runAuditVerify},
			{Name: "report", Summary: "per method: allowed, stepped up (by factor), via grant, refused (by reason), shadow; and the exceptions", Run: runAuditReport},
		},
	}
	switch code := sub.Run(ctx, e, args, e.stdout, e.stderr); code {
	case cli.ExitOK:
		return nil
	case cli.ExitUsage:
		return cli.ErrUsage
	case cli.ExitFailure:
		return cli.ErrReported
	default:
		return cli.ExitCode(code)
	}
}

// parseInterspersed parses fs from args where flags and file names may be
// mixed ("FILES… --keys JWKS"), and returns the file names. After "--",
// everything is a file name.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var files, rest []string
	if i := indexOf(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, cli.ErrHelp
			}
			return nil, cli.ErrUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return append(files, rest...), nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func runAuditVerify(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup audit verify", "FILE|DIR... --keys JWKS [--checkpoints FILE]... [--partial] [--json]",
		"Checks an audit trail written by package auditlog: every chain's sequence\n"+
			"numbers, the hash each entry carries of the one before it, the file headers,\n"+
			"each chain's predecessor, and the signature of every checkpoint with the\n"+
			"public keys of --keys (a JWK Set, or one public JWK). Every problem is printed\n"+
			"in plain words with the file and line where it was found.\n\n"+
			"Exit codes: 0 every record is covered by a valid checkpoint; 3 records after\n"+
			"the last checkpoint (unverified: written since, or a crash); 4 an entry\n"+
			"modified (or a checkpoint forged); 5 entries deleted; 6 entries inserted;\n"+
			"7 entries reordered; 8 a file (or a whole chain) missing; 9 a checkpoint\n"+
			"signed by a key --keys lacks; 10 a torn last line (a crash in a write);\n"+
			"1 the files or keys could not be read; 2 a bad command line. With several\n"+
			"kinds of problems, the code is that of the first in this order: 4, 5, 6,\n"+
			"7, 8, 9, 10, 3.\n")
	keys := fs.String("keys", "", "the `JWKS` file of the checkpoint keys' public halves (required)")
	var copies listFlag
	fs.Var(&copies, "checkpoints", "a `file` of checkpoint copies kept elsewhere (auditlog.WithCheckpointCopy); repeatable")
	partial := fs.Bool("partial", false, "the files are part of each chain: earlier files removed by retention, later ones not given")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *keys == "" {
		return fmt.Errorf("%w: --keys is required", cli.ErrUsage)
	}
	if len(paths) == 0 {
		return fmt.Errorf("%w: no trail files", cli.ErrUsage)
	}
	ks, err := auditlog.ReadKeySet(*keys)
	if err != nil {
		return err
	}
	res, err := auditlog.Verify(paths, auditlog.VerifyOptions{Keys: ks, Partial: *partial, Checkpoints: copies})
	if err != nil {
		return err
	}
	if *asJSON {
		data, err := json.MarshalIndent(verifyJSON(res), "", "  ")
		if err != nil {
			return err
		}
		// encoding/json leaves C1 controls and format characters as
		// they are: escaped here, the JSON reads back the same.
		fmt.Fprintf(cli.PrintableWriter(e.stdout), "%s\n", data)
	} else {
		printVerification(e.stdout, res)
	}
	if w := res.Worst(); w != "" {
		return cli.ExitCode(verifyExit[w])
	}
	return nil
}

// verifyJSON is the --json form of a verification.
func verifyJSON(res *auditlog.Result) any {
	type problem struct {
		Kind    auditlog.ProblemKind `json:"kind"`
		Chain   string               `json:"chain,omitempty"`
		File    string               `json:"file,omitempty"`
		Line    int                  `json:"line,omitempty"`
		Count   int64                `json:"count,omitempty"`
		Message string               `json:"message"`
	}
	out := struct {
		OK       bool                    `json:"ok"`
		ExitCode int                     `json:"exit_code"`
		Files    []string                `json:"files"`
		Copies   int                     `json:"checkpoint_copies,omitempty"`
		Chains   []auditlog.ChainSummary `json:"chains"`
		Problems []problem               `json:"problems"`
	}{OK: res.OK(), ExitCode: verifyExit[res.Worst()], Files: res.Files, Copies: res.Copies, Chains: res.Chains, Problems: []problem{}}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, problem{p.Kind, p.Chain, p.File, p.Line, p.Count, p.Message})
	}
	return out
}

// printVerification writes a verification for a reader: each chain, each
// problem, then the verdict. The chain ids, times, key ids and problem
// messages come from the trail's files, which whoever tampered with the
// trail wrote: each line goes through cli.Printable, so that no value
// acts on the terminal or starts a line of its own (a forged verdict).
func printVerification(w io.Writer, res *auditlog.Result) {
	line := func(format string, args ...any) { fmt.Fprintln(w, cli.Printable(fmt.Sprintf(format, args...))) }
	for _, c := range res.Chains {
		head := fmt.Sprintf("chain %s: %s, entries %d to %d, %d records", c.Chain, fileSpan(c), c.FirstSeq, c.LastSeq, c.Records)
		if c.From != "" {
			head += fmt.Sprintf(" from %s to %s", c.From, c.To)
		}
		line("%s", head)
		keys := "no valid checkpoint"
		if len(c.KeyIDs) > 0 {
			keys = fmt.Sprintf("%d valid checkpoints signed by %s", c.Checkpoints, strings.Join(c.KeyIDs, ", "))
		}
		end := map[string]string{auditlog.EndClosed: "closed by its sink", auditlog.EndUnsealed: "not closed",
			auditlog.TriggerRotate: "goes on in a later file"}[c.End]
		if c.SealedBy != "" {
			end = "not closed; its end is sealed by the next chain, " + c.SealedBy
		}
		line("  %s; %s; %d records verified, %d unverified", keys, end, c.Verified, c.Unverified)
	}
	if res.Copies > 0 {
		line("%d checkpoint copies checked against the trail", res.Copies)
	}
	if len(res.Problems) > 0 {
		fmt.Fprintln(w)
	}
	counts := map[auditlog.ProblemKind]int{}
	for _, p := range res.Problems {
		q := p
		if q.File != "" {
			q.File = filepath.Base(q.File)
		}
		line("%s", q)
		counts[p.Kind]++
	}
	if res.OK() {
		fmt.Fprintf(w, "\nverified: %d files, every record covered by a valid checkpoint\n", len(res.Files))
		return
	}
	var parts []string
	for _, kind := range verifyOrder {
		if n := counts[kind]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kind, n))
		}
	}
	noun := "problems"
	if len(res.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(w, "\nNOT VERIFIED: %d %s (%s); exit code %d (%s)\n", len(res.Problems), noun, strings.Join(parts, ", "), verifyExit[res.Worst()], res.Worst())
}

func fileSpan(c auditlog.ChainSummary) string {
	if c.FirstFile == c.LastFile {
		return fmt.Sprintf("file %d", c.FirstFile)
	}
	return fmt.Sprintf("files %d to %d", c.FirstFile, c.LastFile)
}

func runAuditReport(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup audit report", "FILE|DIR... [--since TIME] [--until TIME] [--format table|json|csv] [--keys JWKS [--partial]]",
		"Reports what an audit trail shows for a period (docs/COMPLIANCE.md): per\n"+
			"method, the calls allowed, how many with a fresh step-up (by factor), via a\n"+
			"grant or the token's acr, the refusals by reason and what a policy in shadow\n"+
			"mode would have refused; then the exceptions: allowed calls to step-up\n"+
			"methods without step-up evidence (must be 0), access tokens and DPoP keys\n"+
			"used from more than one origin, replays and lock-outs per origin.\n\n"+
			"With --keys the trail is verified first (as stepup audit verify does): the\n"+
			"outcome goes to stderr, and when it finds a problem the report is still\n"+
			"printed but the exit code is verify's. TIME is RFC 3339 or a date\n"+
			"(2026-11-01, midnight UTC); --since is inclusive, --until exclusive.\n")
	since := fs.String("since", "", "the period's start `time`")
	until := fs.String("until", "", "the period's end `time`")
	format := fs.String("format", "table", "`format`: table, json or csv")
	keys := fs.String("keys", "", "verify the trail first with this `JWKS` file")
	partial := fs.Bool("partial", false, "with --keys: the files are part of each chain")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("%w: no trail files", cli.ErrUsage)
	}
	var opts auditlog.ReportOptions
	for _, t := range []struct {
		name, v string
		to      *time.Time
	}{{"--since", *since, &opts.Since}, {"--until", *until, &opts.Until}} {
		if t.v == "" {
			continue
		}
		if *t.to, err = parseReportTime(t.v); err != nil {
			return fmt.Errorf("%w: %s: %v", cli.ErrUsage, t.name, err)
		}
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		return fmt.Errorf("%w: --format %q: table, json or csv", cli.ErrUsage, *format)
	}
	var verdict error
	if *keys != "" {
		ks, err := auditlog.ReadKeySet(*keys)
		if err != nil {
			return err
		}
		res, err := auditlog.Verify(paths, auditlog.VerifyOptions{Keys: ks, Partial: *partial})
		if err != nil {
			return err
		}
		if w := res.Worst(); w != "" {
			fmt.Fprintf(e.stderr, "stepup audit report: the trail does NOT verify (%d problems, first kind %s): run stepup audit verify for them\n", len(res.Problems), w)
			verdict = cli.ExitCode(verifyExit[w])
		} else {
			fmt.Fprintf(e.stderr, "stepup audit report: the trail verifies: %d files, every record covered by a valid checkpoint\n", len(res.Files))
		}
	} else {
		fmt.Fprintln(e.stderr, "stepup audit report: the trail was not verified (no --keys)")
	}
	records, err := auditlog.ReadRecords(paths)
	if err != nil {
		return err
	}
	rep := auditlog.NewReport(records, opts)
	// The user agents (and, in a tampered trail, any value) are the
	// callers' own: the report is printed through cli.PrintableWriter, in
	// one write (csv.Writer's buffer could split a UTF-8 sequence).
	var out bytes.Buffer
	switch *format {
	case "json":
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		out.Write(data)
		out.WriteByte('\n')
	case "csv":
		err = rep.WriteCSV(&out)
	default:
		err = rep.WriteTable(&out)
	}
	if err != nil {
		return err
	}
	if _, err := cli.PrintableWriter(e.stdout).Write(out.Bytes()); err != nil {
		return err
	}
	return verdict
}

// parseReportTime reads RFC 3339 or a date (midnight UTC).
func parseReportTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a date (2006-01-02)", v)
	}
	return t, nil
}
