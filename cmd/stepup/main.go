// Command stepup is the tool for operating and debugging Stepup: keys and
// thumbprints, DPoP proofs for grpcurl, development access tokens, a
// decoder that says in plain words what is wrong with a token, proof,
// challenge or refusal (with the reason code a server would give), TOTP
// enrolment, the policy table of a descriptor set, and the verification and
// report of a tamper-evident audit trail.
//
//	stepup keygen --out key.jwk
//	grpcurl -H "authorization: DPoP $(cat token)" \
//	  -H "dpop: $(stepup proof --key key.jwk --method /bank.v1.BankService/GetBalance --authority bank.example:8443 --token token)" \
//	  bank.example:8443 bank.v1.BankService/GetBalance
//	stepup inspect "$TOKEN" --key key.jwk
//	stepup policies --descriptors api.binpb
//
//	stepup audit verify /var/log/stepup --keys audit-keys.jwks
//	stepup audit report /var/log/stepup --since 2026-11-01 --until 2026-12-01
//
// Exit codes: 0 on success, 1 when the command fails (or inspect finds a
// problem), 2 for a bad command line; audit verify has one code per kind of
// problem it finds (3 to 10, docs/CLI.md).
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stepupgrpc/stepup/cmd/cli"
)

// env is what the subcommands read and write.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
}

var program = cli.Program[*env]{
	Name: "stepup",
	Description: `Keys, proofs, development tokens and a decoder for Stepup (DPoP, RFC 9449,
and step-up, RFC 9470 semantics, over gRPC).
`,
	Commands: []cli.Command[*env]{
		{Name: "keygen", Summary: "create a private key (ES256, ES384, Ed25519) as a JWK or PEM file, mode 0600", Run: runKeygen},
		{Name: "thumbprint", Summary: "print the RFC 7638 thumbprint of a key file (JWK or PEM, private or public)", Run: runThumbprint},
		{Name: "proof", Summary: "print a DPoP proof for one gRPC method (for grpcurl -H \"dpop: ...\")", Run: runProof},
		{Name: "token", Summary: "print a development access token bound to a key (local testing only)", Run: runToken},
		{Name: "answer", Summary: "answer the step-up challenge of a refusal (TOTP, device key): prints the stepup-answer header for the retry", Run: runAnswer},
		{Name: "inspect", Summary: "decode and check a token, proof, challenge, grant, answer or grpc-status-details-bin", Run: runInspect},
		{Name: "totp", Summary: "totp enroll (secret, otpauth URI, QR code) and totp code", Run: runTOTP},
		{Name: "policies", Summary: "print the effective policy of every method of a descriptor set", Run: runPolicies},
		{Name: "audit", Summary: "audit verify and audit report: check a tamper-evident audit trail, report what it shows", Run: runAudit},
		{Name: "proto", Summary: "proto export: vendor stepup/v1/options.proto into your build", Run: runProto},
	},
}

func main() {
	os.Exit(program.Run(cli.SignalContext(true), &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, now: time.Now}, os.Args[1:], os.Stdout, os.Stderr))
}

// maxInput bounds what is read from stdin.
const maxInput = 1 << 20

func readAll(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("stdin: more than %d bytes", maxInput)
	}
	return data, nil
}
