package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
)

func runProof(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup proof", "--key FILE --method /pkg.Service/Method --authority HOST[:PORT] [--token FILE] [--nonce N] [--http]",
		"Prints a DPoP proof (RFC 9449) for one call: htm POST, htu\n"+
			"https://AUTHORITY/pkg.Service/Method, a fresh jti and iat, and ath when the\n"+
			"access token is given. A proof is single use and lives seconds: make one\n"+
			"per call, as in\n\n"+
			"  grpcurl -H \"authorization: DPoP $(cat token)\" \\\n"+
			"    -H \"dpop: $(stepup proof --key key.jwk --token token --authority bank.example:8443 \\\n"+
			"      --method /bank.v1.BankService/GetBalance)\" bank.example:8443 bank.v1.BankService/GetBalance\n")
	keyPath := fs.String("key", "", "the client's private key `file` (required)")
	method := fs.String("method", "", "full method `name`, /pkg.Service/Method (required)")
	authority := fs.String("authority", "", "the server's `authority`, host[:port] as the client dials it (required)")
	tokenPath := fs.String("token", "", "access token `file` (or - for stdin): binds the proof to it (ath)")
	nonce := fs.String("nonce", "", "the server's DPoP `nonce` (dpop-nonce), when it requires one")
	plain := fs.Bool("http", false, "htu with http: for a plaintext server on loopback")
	if err := cli.Parse(fs, args, "key", "method", "authority"); err != nil {
		return err
	}
	if !strings.HasPrefix(*method, "/") || strings.Count(*method, "/") != 2 {
		return fmt.Errorf("%w: --method %q: a full method name, /pkg.Service/Method", cli.ErrUsage, *method)
	}
	signer, _, err := cli.ReadSigner(*keyPath)
	if err != nil {
		return err
	}
	s, err := dpop.NewSigner(signer, dpop.WithClock(e.now))
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	token, err := readValue(e, *tokenPath)
	if err != nil {
		return err
	}
	scheme := "https"
	if *plain {
		scheme = "http"
	}
	proof, err := s.ProofWithNonce("POST", scheme+"://"+*authority+*method, token, *nonce)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, proof)
	return nil
}

func runToken(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup token", "--issuer-key FILE --key FILE --iss URL --aud URL [--sub S] [--scope \"a b\"] [--ttl D]",
		"FOR LOCAL TESTING ONLY. Prints an RFC 9068 access token (typ at+jwt) signed\n"+
			"by --issuer-key and bound to --key (cnf.jkt), as an authorization server\n"+
			"would issue it. Real tokens come from your identity provider; a server that\n"+
			"trusts --issuer-key's public key trusts anyone holding this file.\n")
	issuerKey := fs.String("issuer-key", "", "the issuer's private key `file` (required; its public JWK goes in the server's JWKS)")
	keyPath := fs.String("key", "", "the client's key `file` (private or public) to bind the token to (required)")
	iss := fs.String("iss", "", "issuer `URL` (required)")
	aud := fs.String("aud", "", "audience: the resource server's `URL` (required)")
	sub := fs.String("sub", "alice", "`subject`")
	scope := fs.String("scope", "", "space-separated `scopes`")
	clientID := fs.String("client-id", "stepup-cli", "client_id `value`")
	ttl := fs.Duration("ttl", time.Hour, "`lifetime`")
	if err := cli.Parse(fs, args, "issuer-key", "key", "iss", "aud"); err != nil {
		return err
	}
	if *ttl <= 0 || *ttl > 24*time.Hour {
		return fmt.Errorf("%w: --ttl %s: more than 0, at most 24h", cli.ErrUsage, *ttl)
	}
	pub, err := cli.ReadPublicKey(*keyPath)
	if err != nil {
		return err
	}
	jkt, err := dpop.ThumbprintOf(pub)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	_, key, err := cli.ReadSigner(*issuerKey)
	if err != nil {
		return err
	}
	signed, err := cli.DevToken{Issuer: *iss, Subject: *sub, Audience: *aud, ClientID: *clientID,
		Scope: *scope, JKT: jkt, Now: e.now(), TTL: *ttl}.Mint(key)
	if err != nil {
		return fmt.Errorf("%s: %w", *issuerKey, err)
	}
	fmt.Fprintln(e.stdout, signed)
	return nil
}

// readValue reads a value from a file, or stdin for "-", trimmed; "" for
// an empty path.
func readValue(e *env, path string) (string, error) {
	switch path {
	case "":
		return "", nil
	case "-":
		data, err := readAll(e.stdin)
		return strings.TrimSpace(string(data)), err
	}
	data, err := cli.ReadFile(path, cli.MaxKeyFile)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return v, nil
}
