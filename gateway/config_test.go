package gateway_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/gateway"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
)

// baseYAML is a valid configuration of f, in YAML, with relative paths.
func baseYAML(f *files, extra string) string {
	rel := func(p string) string { r, _ := filepath.Rel(f.dir, p); return r }
	return fmt.Sprintf(`# a gateway in front of the relay backend
listen: "127.0.0.1:0"
tls: {cert_file: %s, key_file: %s}
backend:
  address: "127.0.0.1:50051"
  insecure_plaintext: true
descriptor_sets: [%s]
token:
  issuer: %q
  audience: %q
  jwks_file: %s
dpop: {authorities: [%s]}
step_up: {keys_file: %s, totp_secrets_file: %s}
assertion: {key_file: %s, issuer: %q, audience: %s, ttl: 30s}
%s`, rel(f.certFile), rel(f.keyFile), rel(f.descriptors), tokenIssuer, tokenAudience, rel(f.jwksFile),
		gwAuthority, rel(f.stepUpKeys), rel(f.totpFile), rel(f.assertionKey), assertIssuer, assertAud, extra)
}

var quiet = gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

func TestLoadValidConfig(t *testing.T) {
	f := newFiles(t)
	path := writeFile(t, f.dir, "gateway.yaml", []byte(baseYAML(f, `policies:
  "relay.v1.RelayService": {scopes: [relay]}
  "/relay.v1.RelayService/Upload":
    step_up: {factors: [FACTOR_TOTP], max_age: 300s}
insecure_open_services: [relay.v1.StatsService]
`)))
	gw, err := gateway.Load(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	p, err := gw.Guard().Policy(mUpload)
	if err != nil {
		t.Fatal(err)
	}
	if p.StepUp == nil || p.StepUp.MaxAge.Seconds() != 300 || len(p.Scopes) != 1 {
		t.Errorf("Upload's policy from the file: %v", p)
	}
	if p, _ := gw.Guard().Policy("/relay.v1.StatsService/Stats"); !p.NoAuthentication {
		t.Errorf("open service: %v", p)
	}
	if ttl := gw.Config().GetAssertion().GetTtl().AsDuration().Seconds(); ttl != 30 {
		t.Errorf("ttl %v", ttl)
	}
	// A JSON file, for an API that is all open.
	writeDescriptorSet(t, f.dir, "relay.binpb", relayv1.File_relay_v1_relay_proto)
	jsonPath := writeFile(t, f.dir, "gateway.json", []byte(`{"listen": "127.0.0.1:0", "insecurePlaintext": true,
		"backend": {"address": "127.0.0.1:1", "insecure_plaintext": true},
		"descriptorSets": ["relay.binpb"], "insecure_open_services": ["relay.v1.RelayService"],
		"assertion": {"issuer": "gw", "audience": "be"}}`))
	gw2, err := gateway.Load(jsonPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	gw2.Close()
}

func TestBadConfigs(t *testing.T) {
	f := newFiles(t)
	notFDS := writeFile(t, f.dir, "junk.binpb", []byte("\xff\xff\xff not a descriptor set"))
	for _, tc := range []struct {
		name string
		file string // the whole file; baseYAML(f, extra) when empty
		// extra is appended to the valid base
		extra string
		// replace edits the base: old, new
		replace [2]string
		want    string
		many    bool // one error per method is right
	}{
		{name: "malformed YAML", file: "listen: [unclosed\n", want: "not valid YAML or JSON"},
		{name: "unknown field", extra: "bakend: {address: x}\n", want: `unknown field "bakend"`},
		{name: "unknown factor", extra: "policies:\n  \"/relay.v1.RelayService/Echo\":\n    step_up: {factors: [FACTOR_SMS]}\n",
			want: `FACTOR_SMS`},
		{name: "unknown method", extra: "policies:\n  \"/relay.v1.RelayService/Ecoh\": {scopes: [x]}\n",
			want: `policies["/relay.v1.RelayService/Ecoh"]: no such method in the descriptor sets; did you mean "/relay.v1.RelayService/Echo"?`},
		{name: "unknown service", extra: "policies:\n  \"relay.v1.RelaySevice\": {scopes: [x]}\n",
			want: `policies["relay.v1.RelaySevice"]: no such service in the descriptor sets; did you mean "relay.v1.RelayService"?`},
		{name: "policy over an annotation", extra: "policies:\n  \"bank.v1.BankService\": {scopes: [x]}\n",
			want: `policies["bank.v1.BankService"]: the service of /bank.v1.BankService/Transfer is annotated in the descriptor sets (policy): a configured policy is for a .proto that cannot be annotated`, many: true},
		{name: "missing descriptor set", replace: [2]string{"descriptor_sets: [api.binpb]", "descriptor_sets: [missing.binpb]"},
			want: "descriptor_sets[0]: open " + filepath.Join(f.dir, "missing.binpb") + ": no such file or directory"},
		{name: "not a descriptor set", replace: [2]string{"descriptor_sets: [api.binpb]", "descriptor_sets: [" + notFDS + "]"},
			want: "descriptor_sets[0]: " + notFDS + " is not a FileDescriptorSet"},
		{name: "no descriptor set", replace: [2]string{"descriptor_sets: [api.binpb]", ""},
			want: "descriptor_sets: at least one is required"},
		{name: "TLS without authorities", replace: [2]string{"dpop: {authorities: [gateway.example]}", ""},
			want: "dpop.authorities: required with TLS"},
		{name: "plaintext off loopback", replace: [2]string{`listen: "127.0.0.1:0"`, `listen: "0.0.0.0:8443"
insecure_plaintext: true`}, want: "insecure_plaintext: set together with tls"},
		{name: "plain http JWKS URL of another host", replace: [2]string{"jwks_file: issuer-jwks.json", "jwks_url: http://issuer.example/jwks.json"},
			want: `token.jwks_url: "http://issuer.example/jwks.json" is plain http on a host that is not a loopback address`},
		{name: "plain JWKS off loopback", replace: [2]string{`listen: "127.0.0.1:0"`, `listen: "127.0.0.1:0"
insecure_plaintext: true`}, extra: "jwks_listen: \"0.0.0.0:8081\"\n",
			want: `jwks_listen: listen address "0.0.0.0:8081" is not a loopback address`, many: true},
		{name: "no backend", replace: [2]string{`  address: "127.0.0.1:50051"`, ""}, want: "backend.address: required"},
		{name: "step-up without a step-up service", replace: [2]string{"step_up: {keys_file: stepup-keys.json, totp_secrets_file: totp.json}", ""},
			want: "a policy cannot be enforced with this configuration: interceptor: /bank.v1.BankService/AddPayee requires step-up but no challenge service is configured"},
		{name: "annotated methods and no token section", replace: [2]string{"token:\n  issuer: \"" + tokenIssuer + "\"\n  audience: \"" + tokenAudience + "\"\n  jwks_file: issuer-jwks.json\n", ""},
			want: "token: required: interceptor: no TokenVerifier is configured (WithTokenVerifier), but /bank.v1.BankService/AddPayee"},
		{name: "assertion ttl too long", replace: [2]string{"ttl: 30s", "ttl: 3600s"}, want: "assertion.ttl: 1h0m0s is outside 1s..10m"},
		{name: "bad duration", replace: [2]string{"ttl: 30s", "ttl: thirty"}, want: `invalid google.protobuf.Duration value "thirty"`},
		{name: "an audit trail without its key", extra: "audit_log: {dir: audit}\n",
			want: "audit_log.key_file: required"},
		{name: "an audit trail with tiny files", extra: "audit_log: {dir: audit, key_file: audit.jwk, max_file_bytes: 1000}\n",
			want: "audit_log.max_file_bytes: 1000 is below 65536"},
		{name: "an audit trail with a key file that is not there", extra: "audit_log: {dir: audit, key_file: none.jwk}\n",
			want: "audit_log.key_file: auditlog: open " + filepath.Join(f.dir, "none.jwk")},
		{name: "unreadable TOTP file", replace: [2]string{"totp_secrets_file: totp.json", "totp_secrets_file: none.json"},
			want: "step_up.totp_secrets_file: open " + filepath.Join(f.dir, "none.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := tc.file
			if content == "" {
				content = baseYAML(f, tc.extra)
				if tc.replace[0] != "" {
					if !strings.Contains(content, tc.replace[0]) {
						t.Fatalf("the base has no %q", tc.replace[0])
					}
					content = strings.Replace(content, tc.replace[0], tc.replace[1], 1)
				}
			}
			path := writeFile(t, f.dir, "bad.yaml", []byte(content))
			gw, err := gateway.Load(path, quiet)
			if err == nil {
				gw.Close()
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") {
				t.Errorf("the error does not start with the file: %s", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", msg, tc.want)
			}
			if n := strings.Count(msg, path+": "); n != 1 && !tc.many {
				t.Errorf("%d errors, want one: %s", n, msg)
			}
			var ce *gateway.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("not a *ConfigError: %T", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(f.dir, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayReasonsDocumented keeps docs/GATEWAY.md's table of the
// gateway's own audit reasons true.
func TestGatewayReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/GATEWAY.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{string(gateway.ReasonBackendUnavailable), string(gateway.ReasonBadRequest), string(gateway.ReasonAssertionFailed)} {
		if !strings.Contains(string(doc), "| `"+r+"` |") {
			t.Errorf("docs/GATEWAY.md does not list reason %s", r)
		}
	}
	if !strings.Contains(string(doc), "`"+string(gateway.DecisionBackendError)+"`") {
		t.Error("docs/GATEWAY.md does not name the backend_error decision")
	}
}
