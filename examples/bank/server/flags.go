package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/gateway/serverkit"
)

// config is the parsed command line.
type config struct {
	listen            string
	tlsCert, tlsKey   string
	insecurePlaintext bool
	issuer, audience  string
	jwks              string
	jwksURL           string
	discover          bool
	jwksRefresh       time.Duration
	tokenLeeway       time.Duration
	authorities       []string
	totpSecrets       string
	deviceKeys        string
	webauthnCreds     string
	webauthnOrigin    string
	approvalListen    string
	stepUpKeys        string
	requireNonce      bool
	nonceKey          string
	redisURL          string
	adminListen       string
	traceStdout       bool
	auditDir          string
	auditKey          string
	auditCopy         string
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// description is what the usage says between the usage line and the flags.
const description = `Runs the example bank (bank.v1.BankService) behind the Stepup Guard.

Every call needs an access token from --issuer for --audience, bound to the
caller's DPoP key (cnf.jkt), with a fresh DPoP proof. The issuer's keys come
from one of --jwks (a file, read once), --jwks-url (fetched again every
--jwks-refresh, so the issuer can rotate them without a restart) or
--discover (the jwks_uri of --issuer's OpenID discovery document, then as
--jwks-url). Token times are checked with --token-leeway of clock skew.

Transfer, AddPayee and ExportStatements also need a second factor. The
factors offered are those whose flags are given, at least one:
  totp        a TOTP code                  --totp-secrets
  device_key  a registered device key      --device-keys
  webauthn    a passkey (WebAuthn)         --webauthn-credentials, --webauthn-origin
  approval    approved on a second device  --approval-listen (with webauthn: the
              approver signs in with a passkey on the page served there)
(Transfer accepts all four, AddPayee and ExportStatements all but approval.)

Every subject found in --totp-secrets, --device-keys or
--webauthn-credentials gets an account "<subject>-checking" holding
1000.00 EUR. Nothing is persisted.

gRPC health (grpc.health.v1.Health) and reflection are served without
authentication. Audit decisions go to stderr as JSON lines and, with
--audit-dir and --audit-key, to a tamper-evident trail (docs/AUDITLOG.md:
check it with stepup audit verify); once ready, the server prints
"listening on <address>" on stdout. SIGINT or SIGTERM stops it gracefully.
`

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := cli.NewFlagSet(stderr, "server", "[flags]", description)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8443", "`address` to listen on; port 0 picks a free port")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM `file` of the server certificate chain (with --tls-key)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM `file` of the server private key (with --tls-cert)")
	fs.BoolVar(&cfg.insecurePlaintext, "insecure-plaintext", false,
		"serve without TLS, for local testing; refused unless --listen is a loopback address")
	fs.StringVar(&cfg.issuer, "issuer", "", "`URL` that access tokens must carry as iss (required)")
	fs.StringVar(&cfg.audience, "audience", "", "`URI` that the aud of access tokens must contain, naming this server (required)")
	fs.StringVar(&cfg.jwks, "jwks", "", "JWKS JSON `file` with the public keys of the access-token issuer (or --jwks-url, or --discover)")
	fs.StringVar(&cfg.jwksURL, "jwks-url", "", "`URL` of the issuer's JWKS (https, or http on a loopback host), fetched at start and every --jwks-refresh")
	fs.BoolVar(&cfg.discover, "discover", false, "find the JWKS URL in --issuer's /.well-known/openid-configuration (jwks_uri), then as --jwks-url")
	fs.DurationVar(&cfg.jwksRefresh, "jwks-refresh", 5*time.Minute, "how often the keys of --jwks-url or --discover are fetched again (1s..24h)")
	fs.DurationVar(&cfg.tokenLeeway, "token-leeway", 30*time.Second, "clock skew tolerated on the token's exp, nbf and iat and on max_token_age (1s..5m)")
	fs.Var((*listFlag)(&cfg.authorities), "authority",
		"accepted DPoP htu `authority` (host or host:port), repeatable; required with TLS.\n"+
			"With --insecure-plaintext and none, the htu must name the :authority the request was sent to")
	fs.StringVar(&cfg.totpSecrets, "totp-secrets", "",
		"JSON `file` mapping each subject to its base32 TOTP secret: {\"alice\": \"JBSW...\"}")
	fs.StringVar(&cfg.deviceKeys, "device-keys", "",
		"JSON `file` mapping each subject to its device public JWKs: {\"alice\": [{\"kty\": \"EC\", ...}]}")
	fs.StringVar(&cfg.webauthnCreds, "webauthn-credentials", "",
		"JSON `file` mapping each subject to its passkeys, the credential id and COSE public key of each\n"+
			"(base64url), as a registration returns them: {\"alice\": [{\"id\": \"...\", \"public_key\": \"...\"}]};\n"+
			"turns on the webauthn factor, with --webauthn-origin")
	fs.StringVar(&cfg.webauthnOrigin, "webauthn-origin", "",
		"the `origin` passkeys are used from (the relying party: its host is the RP ID), https://host[:port],\n"+
			"or http://localhost:port on loopback; the approver page's origin with --approval-listen")
	fs.StringVar(&cfg.approvalListen, "approval-listen", "",
		"`address` of the approver page (HTTPS with --tls-cert, plain HTTP on loopback with --insecure-plaintext):\n"+
			"turns on the approval factor; needs --webauthn-credentials, the approver's passkeys")
	fs.StringVar(&cfg.stepUpKeys, "stepup-keys", "",
		"step-up key set JSON `file` that signs challenges and grants (format of challenge.LoadKeySet);\n"+
			"without it a key is generated at start, and challenges and grants neither survive\n"+
			"a restart nor verify on another replica")
	fs.StringVar(&cfg.redisURL, "redis", "",
		"`URL` of the Redis that replicas share (redis://[user:password@]host:port[/db], rediss:// for TLS):\n"+
			"DPoP replay cache, single-use challenges and TOTP codes, attempt counters, revocations.\n"+
			"It must run with maxmemory-policy noeviction (checked at start). Without it this state is\n"+
			"kept in process, which is correct for one replica only")
	fs.BoolVar(&cfg.requireNonce, "require-nonce", false,
		"require DPoP server nonces (RFC 9449 §8); the nonce key is random per process unless --nonce-key")
	fs.StringVar(&cfg.nonceKey, "nonce-key", "",
		"`file` holding the DPoP nonce key (at least 32 bytes) that replicas share, so that a nonce\n"+
			"issued by one is accepted by the others; implies --require-nonce")
	fs.StringVar(&cfg.adminListen, "admin-listen", "",
		"`address` of an HTTP listener serving Prometheus metrics at /metrics (plain HTTP: keep it\n"+
			"on a private network); without it, no metrics are served")
	fs.StringVar(&cfg.auditDir, "audit-dir", "",
		"`directory` of a tamper-evident audit trail (hash-chained JSON lines with signed checkpoints,\n"+
			"docs/AUDITLOG.md), created if missing; with --audit-key")
	fs.StringVar(&cfg.auditKey, "audit-key", "",
		"private JWK `file` (Ed25519 or P-256, with a kid) that signs the trail's checkpoints:\n"+
			"stepup keygen --alg Ed25519 --kid audit-1 --out audit.jwk --pub audit.pub.jwk")
	fs.StringVar(&cfg.auditCopy, "audit-checkpoint-copy", "",
		"also append every checkpoint to this `file`: a second place, out of reach of whoever can\n"+
			"rewrite --audit-dir (stepup audit verify --checkpoints checks the trail against it)")
	fs.BoolVar(&cfg.traceStdout, "trace-stdout", false,
		"print the Guard's OpenTelemetry spans to stdout as JSON (for debugging)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, cli.ErrHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.validate()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validate reports every missing or contradictory flag at once.
func (c *config) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"--issuer", c.issuer}, {"--audience", c.audience}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if n := btoi(c.jwks != "") + btoi(c.jwksURL != "") + btoi(c.discover); n != 1 {
		errs = append(errs, errors.New("exactly one of --jwks, --jwks-url and --discover: where the issuer's keys come from"))
	}
	if c.jwksRefresh < time.Second || c.jwksRefresh > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--jwks-refresh %s is outside 1s..24h", c.jwksRefresh))
	}
	if c.tokenLeeway < time.Second || c.tokenLeeway > 5*time.Minute {
		errs = append(errs, fmt.Errorf("--token-leeway %s is outside 1s..5m", c.tokenLeeway))
	}
	if (c.webauthnCreds == "") != (c.webauthnOrigin == "") {
		errs = append(errs, errors.New("--webauthn-credentials and --webauthn-origin go together"))
	}
	if c.approvalListen != "" && c.webauthnCreds == "" {
		errs = append(errs, errors.New("--approval-listen needs --webauthn-credentials and --webauthn-origin: the approver signs in to the page with a passkey"))
	}
	if c.redisURL != "" && c.stepUpKeys == "" {
		errs = append(errs, errors.New("--redis needs --stepup-keys: replicas that share a store must also share the step-up key file"))
	}
	if (c.auditDir == "") != (c.auditKey == "") {
		errs = append(errs, errors.New("--audit-dir and --audit-key go together"))
	}
	if c.auditCopy != "" && c.auditDir == "" {
		errs = append(errs, errors.New("--audit-checkpoint-copy needs --audit-dir"))
	}
	if c.totpSecrets == "" && c.deviceKeys == "" && c.webauthnCreds == "" {
		errs = append(errs, errors.New("--totp-secrets, --device-keys or --webauthn-credentials is required: step-up needs a second factor"))
	}
	switch tls := c.tlsCert != "" || c.tlsKey != ""; {
	case tls && c.insecurePlaintext:
		errs = append(errs, errors.New("--insecure-plaintext cannot be combined with --tls-cert/--tls-key"))
	case tls && (c.tlsCert == "" || c.tlsKey == ""):
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	case !tls && !c.insecurePlaintext:
		errs = append(errs, errors.New("--tls-cert and --tls-key are required (or --insecure-plaintext on a loopback address)"))
	case c.insecurePlaintext:
		if err := serverkit.CheckLoopback(c.listen); err != nil {
			errs = append(errs, fmt.Errorf("--insecure-plaintext refused: %w", err))
		}
	}
	if !c.insecurePlaintext && len(c.authorities) == 0 {
		errs = append(errs, errors.New("--authority is required with TLS: the names clients dial this server by (the htu authority of their DPoP proofs)"))
	}
	return errors.Join(errs...)
}
