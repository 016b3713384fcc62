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
	"io"
	"os"

	"github.com/stepupgrpc/stepup/cmd/cli"
)

func main() {
	os.Exit(run(cli.SignalContext(false), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a subcommand reads and writes.
type env struct {
	stdin  *bufio.Reader
	stdout io.Writer
	stderr io.Writer
	// stdinIsTerminal tells whether the prompt's line feed was echoed.
	stdinIsTerminal bool
}

var program = cli.Program[*env]{
	Name: "client",
	Description: `Calls the example bank server with a DPoP-bound access token and answers
step-up challenges with a TOTP code typed on stdin, or with a device key.
`,
	Commands: []cli.Command[*env]{
		{Name: "keygen", Summary: "create a P-256 private JWK file (DPoP or device key); print its thumbprint", Run: runKeygen},
		{Name: "thumbprint", Summary: "print the RFC 7638 thumbprint of a key file", Run: runThumbprint},
		{Name: "pubkey", Summary: "print the public JWK of a key file (for the server's --device-keys)", Run: runPubkey},
		{Name: "balance", Summary: "show an account's balance", Run: runBalance},
		{Name: "transfer", Summary: "move money to an IBAN (step-up bound to the request)", Run: runTransfer},
		{Name: "add-payee", Summary: "register a payee (step-up, reusable for 5 minutes)", Run: runAddPayee},
		{Name: "watch", Summary: "list an account's transactions (server stream)", Run: runWatch},
		{Name: "export", Summary: "export an account's statement lines (server stream, step-up)", Run: runExport},
	},
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, stdinIsTerminal: isTerminal(stdin)}
	return program.Run(ctx, e, args, stdout, stderr)
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
