package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
)

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup keygen", "--out FILE [--alg ES256|ES384|Ed25519] [--format jwk|pem] [--kid ID] [--pub FILE] [--jwks FILE]",
		"Creates a private key and writes it to FILE (mode 0600, never overwriting a\n"+
			"file), as a private JWK or a PKCS #8 PEM. Prints its RFC 7638 thumbprint:\n"+
			"the cnf.jkt of access tokens bound to it. --pub also writes its public JWK\n"+
			"(for a server's device keys), --jwks a JWK Set of it with kid and alg (for\n"+
			"a token verifier).\n")
	out := fs.String("out", "", "`file` to create (required)")
	alg := fs.String("alg", "ES256", "`algorithm`: ES256, ES384 or Ed25519")
	format := fs.String("format", "jwk", "`format` of the private key file: jwk or pem")
	kid := fs.String("kid", "", "key `id` (the JWK's kid)")
	pubOut := fs.String("pub", "", "also write the public JWK to this `file`")
	jwksOut := fs.String("jwks", "", "also write a JWK Set of the public key, with kid (--kid, else the thumbprint) and alg,\nto this `file`: an issuer's jwks_file, or a server's --jwks")
	if err := cli.Parse(fs, args, "out"); err != nil {
		return err
	}
	var priv crypto.Signer
	var err error
	jwsAlg := *alg
	switch *alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "Ed25519", "EdDSA":
		// "EdDSA" is the name every JOSE library reads (RFC 8037).
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		jwsAlg = "EdDSA"
	default:
		return fmt.Errorf("%w: --alg %q: ES256, ES384 or Ed25519", cli.ErrUsage, *alg)
	}
	if err != nil {
		return err
	}
	if *format != "jwk" && *format != "pem" {
		return fmt.Errorf("%w: --format %q: jwk or pem", cli.ErrUsage, *format)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return err
	}
	if *kid != "" {
		if err := key.Set(jwk.KeyIDKey, *kid); err != nil {
			return err
		}
	}
	switch *format {
	case "pem":
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		if err := cli.WriteNewFile(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return err
		}
	default:
		if err := cli.WritePrivateJWK(*out, key); err != nil {
			return err
		}
	}
	if *pubOut != "" {
		pub, err := key.PublicKey()
		if err != nil {
			return err
		}
		data, err := json.Marshal(pub)
		if err != nil {
			return err
		}
		if err := cli.WriteNewFile(*pubOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	jkt, err := dpop.ThumbprintOf(priv.Public())
	if err != nil {
		return err
	}
	if *jwksOut != "" {
		if err := writeJWKS(*jwksOut, key, jkt, jwsAlg); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, jkt)
	return nil
}

// writeJWKS writes {"keys": [the public key of key]} to path, with a kid
// (key's own, else its thumbprint jkt) and alg: a verifier picks the key
// of a token by its kid and checks the token's alg against the key's.
func writeJWKS(path string, key jwk.Key, jkt, alg string) error {
	pub, err := key.PublicKey()
	if err != nil {
		return err
	}
	if _, ok := pub.KeyID(); !ok {
		if err := pub.Set(jwk.KeyIDKey, jkt); err != nil {
			return err
		}
	}
	if err := pub.Set(jwk.AlgorithmKey, alg); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string][]jwk.Key{"keys": {pub}}, "", "  ")
	if err != nil {
		return err
	}
	return cli.WriteNewFile(path, append(data, '\n'), 0o644)
}

func runThumbprint(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup thumbprint", "--key FILE",
		"Prints the RFC 7638 thumbprint of a key file: a JWK or a PEM key, private or\n"+
			"public (the value of cnf.jkt, and of the audit events' jkt).\n")
	path := fs.String("key", "", "key `file` (required)")
	if err := cli.Parse(fs, args, "key"); err != nil {
		return err
	}
	pub, err := cli.ReadPublicKey(*path)
	if err != nil {
		if hint := jwtHint(*path); hint != "" {
			return errors.New(hint)
		}
		return err
	}
	jkt, err := dpop.ThumbprintOf(pub)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	fmt.Fprintln(e.stdout, jkt)
	return nil
}

// jwtHint says what to do when thumbprint is given a JWT (an access token
// or a proof) instead of a key: the value itself, or a file holding one.
func jwtHint(path string) string {
	v := path
	if data, err := cli.ReadFile(path, maxInput); err == nil {
		v = strings.TrimSpace(string(data))
	}
	if strings.Count(v, ".") != 2 || strings.ContainsAny(v, " \n/") {
		return ""
	}
	if _, err := decodeJWS(v); err != nil {
		return ""
	}
	src := `"$(cat ` + path + `)"`
	if v == path {
		src = "TOKEN"
	}
	return "this is a JWT (a token or a proof), not a key: stepup inspect " + src +
		" prints the thumbprint it is bound to (the token's cnf.jkt, the proof's jwk); thumbprint takes a key file (JWK or PEM)"
}
