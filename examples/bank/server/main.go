// Command server runs the example bank (bank.v1.BankService) behind the
// Stepup Guard: every call needs a DPoP-bound access token (RFC 9449) from
// the configured issuer, and Transfer, AddPayee and ExportStatements need a
// second factor (TOTP, a registered device key, a passkey, or an approval on
// a second device, as its flags turn them on), as declared in bank.proto.
//
// It also serves gRPC health and reflection without authentication, prints
// "listening on <address>" on stdout once it accepts connections, writes
// every audit decision as a JSON line on stderr, and stops gracefully on
// SIGINT or SIGTERM.
//
// Run it with --help for the flags; examples/bank/README.md walks through a
// complete session.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stepupgrpc/stepup/cmd/cli"
)

func main() {
	// After the first signal starts the graceful shutdown, a second one
	// gets the default behaviour: the process ends at once.
	os.Exit(run(cli.SignalContext(true), os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, serves until ctx is done and returns the exit code:
// 0 after a clean shutdown (or --help), 2 for a usage error, 1 otherwise.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, cli.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return cli.ExitUsage
	}
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return cli.ExitFailure
	}
	return cli.ExitOK
}
