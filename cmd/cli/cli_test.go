package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env records what a test command was run with.
type env struct{ ran []string }

func testProgram() *Program[*env] {
	run := func(err error) func(context.Context, *env, []string) error {
		return func(_ context.Context, e *env, args []string) error {
			e.ran = append(e.ran, strings.Join(args, " "))
			return err
		}
	}
	return &Program[*env]{
		Name:        "prog",
		Description: "Does things.\n",
		Commands: []Command[*env]{
			{Name: "ok", Summary: "succeed", Run: run(nil)},
			{Name: "help-asked", Summary: "print its usage", Run: run(ErrHelp)},
			{Name: "bad-flag", Summary: "fail as the flag package does", Run: run(ErrUsage)},
			{Name: "missing", Summary: "miss a flag", Run: run(fmt.Errorf("%w: --out is required", ErrUsage))},
			{Name: "fail", Summary: "fail", Run: run(errors.New("boom"))},
			{Name: "code", Summary: "exit with its own code", Run: run(fmt.Errorf("found: %w", ExitCode(7)))},
		},
	}
}

const wantUsage = `Usage: prog <command> [flags]

Does things.

Commands:
  ok          succeed
  help-asked  print its usage
  bad-flag    fail as the flag package does
  missing     miss a flag
  fail        fail
  code        exit with its own code

Run "prog <command> --help" for a command's flags.
`

func TestProgramRun(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
		ranWith        []string // the arguments each command ran with
	}{
		{args: nil, code: ExitUsage, stdout: wantUsage},
		{args: []string{"help"}, code: ExitOK, stdout: wantUsage},
		{args: []string{"-h"}, code: ExitOK, stdout: wantUsage},
		{args: []string{"--help"}, code: ExitOK, stdout: wantUsage},
		{args: []string{"-help"}, code: ExitOK, stdout: wantUsage},
		{args: []string{"nope"}, code: ExitUsage, stderr: "prog: unknown command \"nope\"\n" + wantUsage},
		{args: []string{"ok", "--x", "y"}, code: ExitOK, ranWith: []string{"--x y"}},
		{args: []string{"help-asked", "--help"}, code: ExitOK, ranWith: []string{"--help"}},
		{args: []string{"bad-flag"}, code: ExitUsage, ranWith: []string{""}},
		{args: []string{"missing"}, code: ExitUsage, stderr: "prog missing: usage: --out is required\n", ranWith: []string{""}},
		{args: []string{"fail"}, code: ExitFailure, stderr: "prog fail: boom\n", ranWith: []string{""}},
		{args: []string{"code"}, code: 7, ranWith: []string{""}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{}
			code := testProgram().Run(context.Background(), e, tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.stdout)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.stderr)
			}
			if strings.Join(e.ran, "|") != strings.Join(tc.ranWith, "|") {
				t.Errorf("commands ran with %q, want %q", e.ran, tc.ranWith)
			}
		})
	}
}

func TestProgramRunPassesContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var got any
	p := &Program[int]{Name: "p", Commands: []Command[int]{{Name: "c", Run: func(ctx context.Context, e int, _ []string) error {
		got = fmt.Sprintf("%v %d", ctx.Value(key{}), e)
		return nil
	}}}}
	if code := p.Run(ctx, 7, []string{"c"}, &bytes.Buffer{}, &bytes.Buffer{}); code != ExitOK || got != "v 7" {
		t.Errorf("Run = %d, command saw %v; want 0 and \"v 7\"", code, got)
	}
}

func TestNewFlagSetAndParse(t *testing.T) {
	newFS := func(out *bytes.Buffer) (*testFlags, func(args ...string) error) {
		fs := NewFlagSet(out, "prog cmd", "--out FILE", "Does it.\n")
		f := &testFlags{out: fs.String("out", "", "`file` to write (required)"), n: fs.Int("n", 1, "a number")}
		return f, func(args ...string) error { return Parse(fs, args, "out") }
	}

	t.Run("ok", func(t *testing.T) {
		var out bytes.Buffer
		f, parse := newFS(&out)
		if err := parse("--out", "x", "-n", "3"); err != nil || *f.out != "x" || *f.n != 3 {
			t.Errorf("Parse = %v, out %q, n %d", err, *f.out, *f.n)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q", out.String())
		}
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		_, parse := newFS(&out)
		if err := parse("--help"); err != ErrHelp {
			t.Errorf("Parse = %v, want ErrHelp", err)
		}
		want := "Usage: prog cmd --out FILE\n\nDoes it.\n\nFlags (one or two dashes):\n" +
			"  -n int\n    \ta number (default 1)\n  -out file\n    \tfile to write (required)\n"
		if out.String() != want {
			t.Errorf("usage:\n%s\nwant:\n%s", out.String(), want)
		}
	})
	t.Run("unknown flag", func(t *testing.T) {
		var out bytes.Buffer
		_, parse := newFS(&out)
		if err := parse("--bogus"); err != ErrUsage {
			t.Errorf("Parse = %v, want ErrUsage itself", err)
		}
		if !strings.HasPrefix(out.String(), "flag provided but not defined: -bogus\nUsage: prog cmd --out FILE\n") {
			t.Errorf("printed %q, want the error then the usage", out.String())
		}
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", "x", "extra"}, `usage: unexpected argument "extra"`},
		{nil, "usage: --out is required"},
		{[]string{"--out", ""}, "usage: --out is required"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			_, parse := newFS(&out)
			err := parse(tc.args...)
			if err == ErrUsage || !errors.Is(err, ErrUsage) || err.Error() != tc.want {
				t.Errorf("Parse = %v, want an error wrapping ErrUsage: %s", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q", out.String())
			}
		})
	}
}

// testFlags are the flags of the flag set that TestNewFlagSetAndParse builds.
type testFlags struct {
	out *string
	n   *int
}

func TestSignalContext(t *testing.T) {
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		restore bool
		sig     os.Signal
	}{{false, syscall.SIGTERM}, {true, os.Interrupt}} {
		ctx := SignalContext(tc.restore)
		if ctx.Err() != nil {
			t.Fatalf("SignalContext(%v) is done before any signal", tc.restore)
		}
		if err := self.Signal(tc.sig); err != nil {
			t.Skipf("cannot signal this process: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("SignalContext(%v): %v did not cancel the context", tc.restore, tc.sig)
		}
	}
}
