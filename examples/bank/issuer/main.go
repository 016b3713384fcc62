// Command issuer is a development stand-in for an OAuth authorization
// server, so that the example bank can be tried without one. It creates a
// signing key and its public JWKS (init), mints RFC 9068 access tokens bound
// to a DPoP key thumbprint (mint), and helps with TOTP (totp-secret, totp).
//
// It is for trying the example only: a real deployment gets its tokens from
// an authorization server that authenticated the user.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/cmd/cli"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

// env is what a subcommand reads and writes.
type env struct {
	stdout, stderr io.Writer
	now            func() time.Time
}

var program = cli.Program[*env]{
	Name: "issuer",
	Description: `A development token issuer for the example bank. NOT an authorization
server: it signs whatever it is asked to.
`,
	Commands: []cli.Command[*env]{
		{Name: "init", Summary: "create a signing key (DIR/issuer.jwk) and its public JWKS (DIR/jwks.json)", Run: runInit},
		{Name: "mint", Summary: "print an access token (RFC 9068, typ at+jwt) bound to a DPoP key thumbprint", Run: runMint},
		{Name: "totp-secret", Summary: "print a new random base32 TOTP secret", Run: runTOTPSecret},
		{Name: "totp", Summary: "print the current TOTP code of a secret", Run: runTOTP},
	},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	return program.Run(ctx, &env{stdout: stdout, stderr: stderr, now: now}, args, stdout, stderr)
}

// kidPattern is what init accepts as a key id.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func runInit(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "issuer init", "--dir DIR",
		"Creates an ES256 (P-256) signing key with a key id. Writes the private JWK to\n"+
			"DIR/issuer.jwk (mode 0600) and the public key set to DIR/jwks.json, the file\n"+
			"the server's --jwks reads. Existing files are never overwritten.\n")
	dir := fs.String("dir", "", "`directory` to write to, created if missing (required)")
	kid := fs.String("kid", "dev-issuer-1", "key `id` (kid) of the new key")
	if err := cli.Parse(fs, args, "dir"); err != nil {
		return err
	}
	if !kidPattern.MatchString(*kid) {
		return fmt.Errorf("%w: --kid must be 1 to 64 characters from A-Z a-z 0-9 . _ -", cli.ErrUsage)
	}
	privPath, jwksPath := filepath.Join(*dir, "issuer.jwk"), filepath.Join(*dir, "jwks.json")
	for _, p := range []string{privPath, jwksPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists; not overwriting it", p)
		}
	}
	_, priv, err := cli.NewP256Key()
	if err != nil {
		return err
	}
	for k, v := range map[string]any{jwk.KeyIDKey: *kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := priv.Set(k, v); err != nil {
			return err
		}
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return err
	}
	setJSON, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	if err := cli.WritePrivateJWK(privPath, priv); err != nil {
		return err
	}
	if err := cli.WriteNewFile(jwksPath, append(setJSON, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (private, kid %s) and %s (public)\n", privPath, *kid, jwksPath)
	return nil
}

// jktPattern is an RFC 7638 SHA-256 thumbprint: 43 base64url characters.
var jktPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func runMint(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "issuer mint", "--key FILE --sub SUBJECT --jkt THUMBPRINT --issuer URL --audience URI [flags]",
		"Prints an RFC 9068 JWT access token (header typ at+jwt, kid of the key) with\n"+
			"the claims iss, sub, aud, client_id, scope, iat, exp, jti and cnf.jkt, which\n"+
			"binds it to the DPoP key with that thumbprint (RFC 9449 §6).\n")
	keyPath := fs.String("key", "", "private JWK `file` written by init (required)")
	sub := fs.String("sub", "", "`subject` (sub) of the token (required)")
	jkt := fs.String("jkt", "", "RFC 7638 `thumbprint` of the client's DPoP key, from \"client keygen\" (required)")
	scope := fs.String("scope", "bank", "space-separated `scopes`; Transfer needs \"bank bank:transfer\"")
	issuer := fs.String("issuer", "", "`URL` for iss; the server's --issuer (required)")
	audience := fs.String("audience", "", "`URI` for aud; the server's --audience (required)")
	clientID := fs.String("client-id", "bank-cli", "`id` for client_id")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token, at most 24h")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--key", *keyPath}, {"--sub", *sub}, {"--jkt", *jkt}, {"--issuer", *issuer}, {"--audience", *audience}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s required", cli.ErrUsage, strings.Join(missing, ", "))
	}
	if !jktPattern.MatchString(*jkt) {
		return fmt.Errorf("%w: --jkt must be an RFC 7638 SHA-256 thumbprint (43 base64url characters)", cli.ErrUsage)
	}
	if *ttl <= 0 || *ttl > 24*time.Hour {
		return fmt.Errorf("%w: --ttl must be positive and at most 24h", cli.ErrUsage)
	}
	key, err := cli.ReadPrivateJWK(*keyPath)
	if err != nil {
		return err
	}
	signed, err := cli.DevToken{Issuer: *issuer, Subject: *sub, Audience: *audience, ClientID: *clientID,
		Scope: *scope, JKT: *jkt, Now: e.now(), TTL: *ttl}.Mint(key)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	fmt.Fprintln(e.stdout, signed)
	return nil
}

func runTOTPSecret(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "issuer totp-secret", "[--sub SUBJECT]",
		"Prints a new random 160-bit TOTP secret in base32 (RFC 6238, as authenticator\n"+
			"apps take it). With --sub, also prints an otpauth:// URI on stderr, which an\n"+
			"authenticator app can import.\n")
	sub := fs.String("sub", "", "`subject` to name in the otpauth:// URI")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	fmt.Fprintln(e.stdout, secret)
	if *sub != "" {
		q := url.Values{"secret": {secret}, "issuer": {"Stepup Bank"}}
		fmt.Fprintf(e.stderr, "otpauth://totp/%s?%s\n", url.PathEscape("Stepup Bank:"+*sub), q.Encode())
	}
	return nil
}

func runTOTP(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "issuer totp", "--secret SECRET",
		"Prints the current 6-digit TOTP code of a base32 secret (30 s, SHA-1): what an\n"+
			"authenticator app would show. For scripts and trying the example.\n")
	secret := fs.String("secret", "", "base32 `secret` (required)")
	if err := cli.Parse(fs, args, "secret"); err != nil {
		return err
	}
	code, err := totp.Code(*secret, e.now())
	if err != nil {
		return fmt.Errorf("--secret: %w", err)
	}
	fmt.Fprintln(e.stdout, code)
	return nil
}
