// Command client calls the example bank server with a DPoP-bound access
// token. It signs a DPoP proof for every call, retries with the server's
// nonce when asked, and answers step-up challenges: it shows what is being
// approved and prompts for a TOTP code on stdin, or signs with a device key
// (--device-key).
//
// Subcommands: keygen, thumbprint, pubkey, balance, transfer, add-payee,
// watch and export. Run "client help" for the flags; examples/bank/README.md
// walks through a complete session.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a subcommand reads and writes.
type env struct {
	stdin  *bufio.Reader
	stdout io.Writer
	stderr io.Writer
	// stdinIsTerminal tells whether the prompt's line feed was echoed.
	stdinIsTerminal bool
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"keygen", "create a P-256 private JWK file (DPoP or device key); print its thumbprint", runKeygen},
	{"thumbprint", "print the RFC 7638 thumbprint of a key file", runThumbprint},
	{"pubkey", "print the public JWK of a key file (for the server's --device-keys)", runPubkey},
	{"balance", "show an account's balance", runBalance},
	{"transfer", "move money to an IBAN (step-up bound to the request)", runTransfer},
	{"add-payee", "register a payee (step-up, reusable for 5 minutes)", runAddPayee},
	{"watch", "list an account's transactions (server stream)", runWatch},
	{"export", "export an account's statement lines (server stream, step-up)", runExport},
}

// errUsage marks an error in the command line: exit code 2.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, stdinIsTerminal: isTerminal(stdin)}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errHelp):
			return 0
		case err == errUsage: // already reported by the flag package
			return 2
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "client %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "client %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "client: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: client <command> [flags]

Calls the example bank server with a DPoP-bound access token and answers
step-up challenges with a TOTP code typed on stdin, or with a device key.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "client <command> --help" for a command's flags.
`)
}

// isTerminal reports whether r is a character device (a terminal), as
// opposed to a pipe or a file.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
