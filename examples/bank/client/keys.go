package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
)

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "client keygen", "--out FILE",
		"Creates a P-256 private key, writes it to FILE as a private JWK (mode 0600,\n"+
			"never overwriting a file) and prints its RFC 7638 thumbprint: the value an\n"+
			"access token's cnf.jkt must carry. The same file serves as a device key\n"+
			"(--device-key); its public JWK is what \"client pubkey\" prints.\n")
	out := fs.String("out", "", "`file` to create (required)")
	if err := cli.Parse(fs, args, "out"); err != nil {
		return err
	}
	priv, key, err := cli.NewP256Key()
	if err != nil {
		return err
	}
	if err := cli.WritePrivateJWK(*out, key); err != nil {
		return err
	}
	jkt, err := dpop.ThumbprintOf(&priv.PublicKey)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, jkt)
	return nil
}

func runThumbprint(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "client thumbprint", "--key FILE", "Prints the RFC 7638 thumbprint of a private or public JWK file.\n")
	path := fs.String("key", "", "JWK `file` (required)")
	if err := cli.Parse(fs, args, "key"); err != nil {
		return err
	}
	data, err := cli.ReadFile(*path, cli.MaxKeyFile)
	if err != nil {
		return err
	}
	jkt, err := dpop.Thumbprint(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	fmt.Fprintln(e.stdout, jkt)
	return nil
}

func runPubkey(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "client pubkey", "--key FILE",
		"Prints the public JWK of a private JWK file on one line, for the server's\n"+
			"--device-keys file.\n")
	path := fs.String("key", "", "private JWK `file` (required)")
	if err := cli.Parse(fs, args, "key"); err != nil {
		return err
	}
	key, err := cli.ReadPrivateJWK(*path)
	if err != nil {
		return err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return err
	}
	data, err := json.Marshal(pub)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(data))
	return nil
}

// loadSigner reads a private key file (JWK or PEM) as a crypto.Signer.
func loadSigner(path string) (crypto.Signer, error) {
	return challenge.LoadPrivateKey(path)
}

// readToken reads an access token file, ignoring surrounding white space.
func readToken(path string) (string, error) {
	data, err := cli.ReadFile(path, cli.MaxKeyFile)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return token, nil
}
