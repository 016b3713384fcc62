package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/dpop"
)

// errHelp reports that a command's --help was printed.
var errHelp = errors.New("help requested")

// maxKeyFile bounds the size of a key or token file.
const maxKeyFile = 64 << 10

// newFlagSet returns a flag set for a subcommand whose usage starts with
// synopsis and description.
func newFlagSet(e *env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: client %s %s\n\n%s\nFlags (one or two dashes):\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a subcommand's flags. The flag package has already printed
// any error and the usage, so errUsage alone is returned.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "keygen", "--out FILE",
		"Creates a P-256 private key, writes it to FILE as a private JWK (mode 0600,\n"+
			"never overwriting a file) and prints its RFC 7638 thumbprint: the value an\n"+
			"access token's cnf.jkt must carry. The same file serves as a device key\n"+
			"(--device-key); its public JWK is what \"client pubkey\" prints.\n")
	out := fs.String("out", "", "`file` to create (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return err
	}
	data, err := json.Marshal(key)
	if err != nil {
		return err
	}
	if err := writeNewFile(*out, append(data, '\n')); err != nil {
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
	fs := newFlagSet(e, "thumbprint", "--key FILE", "Prints the RFC 7638 thumbprint of a private or public JWK file.\n")
	path := fs.String("key", "", "JWK `file` (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("%w: --key is required", errUsage)
	}
	data, err := readSmallFile(*path)
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
	fs := newFlagSet(e, "pubkey", "--key FILE",
		"Prints the public JWK of a private JWK file on one line, for the server's\n"+
			"--device-keys file.\n")
	path := fs.String("key", "", "private JWK `file` (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("%w: --key is required", errUsage)
	}
	key, err := readPrivateJWK(*path)
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

// loadSigner reads a private JWK file as a crypto.Signer.
func loadSigner(path string) (crypto.Signer, error) {
	key, err := readPrivateJWK(path)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := raw.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", path, raw)
	}
	return s, nil
}

func readPrivateJWK(path string) (jwk.Key, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JWK: %w", path, err)
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || !private {
		return nil, fmt.Errorf("%s: not an asymmetric private key", path)
	}
	return key, nil
}

// readToken reads an access token file, ignoring surrounding white space.
func readToken(path string) (string, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return token, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// writeNewFile creates path readable by its owner only; it never
// overwrites an existing file.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
