// Package cli holds the command-line scaffolding that the stepup command
// and the example bank's commands (client, issuer and server) share: a
// table of subcommands and its dispatcher, flag sets whose usage follows one
// layout, flag parsing that tells a request for help from a usage error, the
// signal handling of main, the reading and writing of small key files, and
// development access tokens.
//
// Every command exits with ExitOK (0) on success or after printing its
// usage on request, ExitFailure (1) when it fails, and ExitUsage (2) for a
// bad command line.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	ExitOK      = 0 // success, or the usage printed on request
	ExitFailure = 1 // the command failed
	ExitUsage   = 2 // a bad command line
)

var (
	// ErrHelp reports that a command printed its usage because --help or
	// -h was given. It is not a failure: the exit code is ExitOK.
	ErrHelp = errors.New("help requested")

	// ErrUsage marks an error in the command line: the exit code is
	// ExitUsage. Wrap it to say what is wrong, as in
	// fmt.Errorf("%w: --out is required", ErrUsage). Parse returns it
	// unwrapped when the flag package has already printed the error and
	// the usage, and then nothing more is printed.
	ErrUsage = errors.New("usage")

	// ErrReported marks a failure the command has already reported (on
	// stdout or stderr): the exit code is ExitFailure and nothing more is
	// printed.
	ErrReported = errors.New("failure already reported")
)

// ExitCode is an error a command returns when it has reported its outcome
// itself and exits with a code of its own, above ExitUsage (such as
// `stepup audit verify`, one code per kind of problem found). Nothing more
// is printed.
type ExitCode int

func (c ExitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

// Command is one subcommand of a Program. Run gets the program's
// environment e and the arguments after the subcommand's name.
type Command[E any] struct {
	Name    string
	Summary string // one line for the program's usage
	Run     func(ctx context.Context, e E, args []string) error
}

// Program is a command made of subcommands, such as "client keygen".
// E is what the subcommands read and write (their environment).
type Program[E any] struct {
	// Name is the program's name in its usage and messages.
	Name string
	// Description is printed between the usage line and the list of
	// commands; it ends with a line feed.
	Description string
	Commands    []Command[E]
}

// Run runs the subcommand that args[0] names and returns the exit code.
//
// Without arguments, it prints the usage on stdout and returns ExitUsage;
// for "help", "-h", "--help" or "-help", it prints it and returns ExitOK.
// An unknown command is reported on stderr, followed by the usage. A
// subcommand's error is reported on stderr as "<program> <command>: <err>",
// except ErrHelp and an unwrapped ErrUsage, which the flag package has
// already reported; an error that wraps ErrUsage gives ExitUsage, an
// ExitCode its own code, any other ExitFailure.
func (p *Program[E]) Run(ctx context.Context, e E, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		p.Usage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range p.Commands {
		if c.Name == args[0] {
			return exitCode(stderr, p.Name+" "+c.Name, c.Run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", p.Name, args[0])
	p.Usage(stderr)
	return ExitUsage
}

// Usage prints the program's usage: the usage line, the description, one
// line per command with its summary, and how to get a command's flags.
func (p *Program[E]) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\n%s\nCommands:\n", p.Name, p.Description)
	width := 0
	for _, c := range p.Commands {
		width = max(width, len(c.Name))
	}
	for _, c := range p.Commands {
		fmt.Fprintf(w, "  %-*s %s\n", width+1, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun \"%s <command> --help\" for a command's flags.\n", p.Name)
}

// exitCode reports err on stderr after prefix, unless it needs no report,
// and returns the exit code for it.
func exitCode(stderr io.Writer, prefix string, err error) int {
	var code ExitCode
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return ExitOK
	case errors.As(err, &code):
		return int(code)
	case err == ErrUsage: // already reported by the flag package
		return ExitUsage
	case errors.Is(err, ErrReported):
		return ExitFailure
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %s\n", prefix, Printable(err.Error()))
		return ExitUsage
	default:
		// An error may quote the input (a file's content, a flag's value).
		fmt.Fprintf(stderr, "%s: %s\n", prefix, Printable(err.Error()))
		return ExitFailure
	}
}

// NewFlagSet returns a flag set that reports errors on output and whose
// usage reads
//
//	Usage: <command> <synopsis>
//
//	<description>
//	Flags (one or two dashes):
//	<the flags>
//
// command is the full command, such as "client keygen"; description ends
// with a line feed.
func NewFlagSet(output io.Writer, command, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	// The flag package names an unknown flag as it was given.
	fs.SetOutput(PrintableWriter(output))
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s %s\n\n%s\nFlags (one or two dashes):\n", command, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses a subcommand's flags, which take no other arguments, and
// checks that each flag named in required was given a value.
//
// It returns ErrHelp for --help and -h, and an unwrapped ErrUsage for an
// error that the flag package has already printed with the usage. A
// stray argument or a missing required flag gives an error that wraps
// ErrUsage and says which. required must name flags of fs.
func Parse(fs *flag.FlagSet, args []string, required ...string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return fmt.Errorf("%w: --%s is required", ErrUsage, name)
		}
	}
	return nil
}

// SignalContext returns a context that the first SIGINT or SIGTERM
// cancels, for main to hand to the command. If restore is true, the
// signals then get their default behaviour back, so that a second one ends
// the process at once (a server whose graceful shutdown hangs can still be
// stopped); otherwise later signals are caught and ignored until the
// process exits.
func SignalContext(restore bool) context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if restore {
		go func() {
			<-ctx.Done()
			stop()
		}()
	}
	return ctx
}
