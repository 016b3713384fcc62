package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stepup-cli")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "stepup")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stepup runs the built binary in dir and returns stdout, stderr and the
// exit code.
func stepup(t *testing.T, dir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed and returns its trimmed stdout.
func ok(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errOut, code := stepup(t, dir, "", args...)
	if code != 0 {
		t.Fatalf("stepup %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return strings.TrimSpace(out)
}

func TestUsageAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	if _, _, code := stepup(t, dir, ""); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	if out, _, code := stepup(t, dir, "", "--help"); code != 0 || !strings.Contains(out, "inspect") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if _, errOut, code := stepup(t, dir, "", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d %s", code, errOut)
	}
	if _, errOut, code := stepup(t, dir, "", "proof", "--key", "k"); code != 2 || !strings.Contains(errOut, "--method is required") {
		t.Errorf("missing flag: exit %d %s", code, errOut)
	}
	for _, c := range []string{"keygen", "thumbprint", "proof", "token", "inspect", "policies"} {
		if _, errOut, code := stepup(t, dir, "", c, "--help"); code != 0 || !strings.Contains(errOut, "Usage: stepup "+c) {
			t.Errorf("%s --help: exit %d\n%s", c, code, errOut)
		}
	}
	if _, errOut, _ := stepup(t, dir, "", "token", "--help"); !strings.Contains(errOut, "FOR LOCAL TESTING ONLY") {
		t.Error("token's help does not say it is for local testing only")
	}
}

func TestKeygenAndThumbprint(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ alg, format string }{{"ES256", "jwk"}, {"ES384", "jwk"}, {"Ed25519", "jwk"}, {"ES256", "pem"}, {"Ed25519", "pem"}} {
		t.Run(tc.alg+"-"+tc.format, func(t *testing.T) {
			name := tc.alg + "." + tc.format
			jkt := ok(t, dir, "keygen", "--alg", tc.alg, "--format", tc.format, "--out", name, "--pub", name+".pub")
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("private key file mode %o", st.Mode().Perm())
			}
			if got := ok(t, dir, "thumbprint", "--key", name); got != jkt {
				t.Errorf("thumbprint of the private key %s, keygen printed %s", got, jkt)
			}
			if got := ok(t, dir, "thumbprint", "--key", name+".pub"); got != jkt {
				t.Errorf("thumbprint of the public key %s, keygen printed %s", got, jkt)
			}
			pub, err := os.ReadFile(filepath.Join(dir, name+".pub"))
			if err != nil {
				t.Fatal(err)
			}
			k, err := jwk.ParseKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			if private, _ := jwk.IsPrivateKey(k); private {
				t.Error("--pub wrote a private key")
			}
			if _, errOut, code := stepup(t, dir, "", "keygen", "--out", name); code != 1 || !strings.Contains(errOut, "exists") {
				t.Errorf("overwrite: exit %d %s", code, errOut)
			}
		})
	}
}

// devSetup makes a client key, an issuer key and its JWKS, and a token.
func devSetup(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	ok(t, dir, "keygen", "--out", "client.jwk")
	ok(t, dir, "keygen", "--out", "issuer.jwk", "--pub", "issuer.pub", "--kid", "iss-1")
	pub, err := os.ReadFile(filepath.Join(dir, "issuer.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(`{"keys":[`+strings.TrimSpace(string(pub))+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := ok(t, dir, append([]string{"token", "--issuer-key", "issuer.jwk", "--key", "client.jwk",
		"--iss", "https://issuer.example", "--aud", "https://bank.example", "--scope", "bank"}, extra...)...)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestProofAndInspect(t *testing.T) {
	dir := t.TempDir()
	tok := devSetup(t, dir)
	const method = "/bank.v1.BankService/GetBalance"
	proof := ok(t, dir, "proof", "--key", "client.jwk", "--token", "token", "--method", method, "--authority", "bank.example:8443")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"a good proof", "", []string{"inspect", proof, "--token", "token", "--method", method, "--authority", "bank.example:8443"}, 0,
			[]string{"a DPoP proof", "ath is the hash of --token", "the server's proof verification passes"}},
		{"another method", "", []string{"inspect", proof, "--token", "token", "--method", "/bank.v1.BankService/Transfer", "--authority", "bank.example:8443"}, 1,
			[]string{`this call is to "https://bank.example:8443/bank.v1.BankService/Transfer"`, "(DPOP_BAD_HTU)"}},
		{"another token", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln", []string{"inspect", proof, "--token", "-", "--method", method, "--authority", "bank.example:8443"}, 1,
			[]string{"ath is the hash of another token", "(DPOP_BAD_ATH)"}},
		{"an old proof", "", []string{"inspect", proof, "--at", strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10)}, 1,
			[]string{"a proof lives seconds", "(DPOP_IAT_TOO_OLD)"}},
		{"a good token, from stdin", tok, []string{"inspect", "--key", "client.jwk", "--jwks", "jwks.json", "--iss", "https://issuer.example", "--aud", "https://bank.example"}, 0,
			[]string{"an access token", "cnf.jkt is the thumbprint of client.jwk", "signature, iss \"https://issuer.example\" and aud \"https://bank.example\" verify"}},
		{"an expired token", "", []string{"inspect", tok, "--at", time.Now().Add(2 * time.Hour).Format(time.RFC3339)}, 1,
			[]string{"expired 1h", "(TOKEN_EXPIRED)"}},
		{"a token for another issuer", "", []string{"inspect", tok, "--jwks", "jwks.json", "--iss", "https://other.example", "--aud", "https://bank.example"}, 1,
			[]string{"(TOKEN_WRONG_ISSUER)"}},
		{"not a JWS", "", []string{"inspect", "hello.world"}, 1, []string{"(MALFORMED)"}},
		{"no dot: maybe an opaque token", "", []string{"inspect", "hello"}, 1, []string{"opaque (non-JWT)", "(TOKEN_MALFORMED)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := stepup(t, dir, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("a token bound to another key", func(t *testing.T) {
		ok(t, dir, "keygen", "--out", "other.jwk")
		out, _, code := stepup(t, dir, "", "inspect", tok, "--key", "other.jwk")
		if code != 1 || !strings.Contains(out, "cnf.jkt is not this key's thumbprint") || !strings.Contains(out, "(DPOP_KEY_MISMATCH)") {
			t.Errorf("exit %d\n%s", code, out)
		}
	})
}

func TestInspectRefusalTrailer(t *testing.T) {
	info, _ := anypb.New(&errdetails.ErrorInfo{Reason: interceptor.WireInsufficientUserAuthentication, Domain: interceptor.ErrorDomain})
	ch, _ := anypb.New(&stepupv1.StepUpChallenge{
		Method: "/bank.v1.BankService/Transfer", Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP},
		SummaryText: "approve BankService.Transfer: amount 120.00 EUR", BoundToRequest: true,
		Challenge: "eyJhbGciOiJIUzI1NiIsInR5cCI6InN0ZXB1cC1jaGFsbGVuZ2Urand0In0.eyJleHAiOjF9.c2ln",
	})
	b, err := proto.Marshal(&spb.Status{Code: int32(codes.Unauthenticated), Message: "stepup: step-up required", Details: []*anypb.Any{info, ch}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := stepup(t, t.TempDir(), "", "inspect", base64.StdEncoding.EncodeToString(b))
	for _, w := range []string{"code     Unauthenticated", "step-up required: answer the challenge", "the user approves: approve BankService.Transfer: amount 120.00 EUR",
		"a step-up challenge", "(STEPUP_CHALLENGE_EXPIRED)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d for an expired challenge", code)
	}
}

func TestTOTP(t *testing.T) {
	dir := t.TempDir()
	out := ok(t, dir, "totp", "enroll", "--subject", "alice", "--issuer", "Bank")
	lines := strings.Split(out, "\n")
	secret, found := strings.CutPrefix(lines[0], "secret: ")
	if !found || !strings.Contains(out, "otpauth://totp/Bank:alice?") || !strings.Contains(out, "secret="+secret) || !strings.Contains(out, "█") {
		t.Fatalf("enroll output:\n%s", out)
	}
	before, _ := challenge.TOTPCode(secret, time.Now())
	code := ok(t, dir, "totp", "code", "--secret", secret)
	after, _ := challenge.TOTPCode(secret, time.Now())
	if code != before && code != after {
		t.Errorf("code %s, the factor computes %s", code, before)
	}
	if _, _, c := stepup(t, dir, "", "totp", "code"); c != 2 {
		t.Errorf("totp code without a secret: exit %d", c)
	}
}

func TestPolicies(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bank, err := gateway.DescriptorSet(bankv1.File_bank_v1_bank_proto)
	if err != nil {
		t.Fatal(err)
	}
	write("bank.binpb", bank)
	out := ok(t, dir, "policies", "--descriptors", "bank.binpb")
	if !strings.Contains(out, "/bank.v1.BankService/Transfer") || !strings.Contains(out, "totp,device_key,webauthn") || !strings.Contains(out, "every call") {
		t.Errorf("table:\n%s", out)
	}
	js := ok(t, dir, "policies", "--descriptors", "bank.binpb", "--json")
	var rows []policyRow
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Method == "/bank.v1.BankService/Transfer" && (!r.BindRequest || !r.StepUp || r.MaxAge != "every call") {
			t.Errorf("Transfer: %+v", r)
		}
	}
	relay, err := gateway.DescriptorSet(relayv1.File_relay_v1_relay_proto)
	if err != nil {
		t.Fatal(err)
	}
	write("relay.binpb", relay)
	out, errOut, code := stepup(t, dir, "", "policies", "--descriptors", "relay.binpb")
	if code != 1 || !strings.Contains(out, "no policy") || !strings.Contains(errOut, "with a problem") {
		t.Errorf("unannotated API: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := stepup(t, dir, "", "policies", "--descriptors", "missing.binpb"); code != 1 || !strings.Contains(errOut, "missing.binpb") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
}

// TestInspectStepUpTokens decodes a real challenge, answer and grant from a
// step-up service.
func TestInspectStepUpTokens(t *testing.T) {
	dir := t.TempDir()
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/AddPayee",
		Requirement: &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}, MaxAge: 5 * time.Minute}}
	out, err := svc.Check(context.Background(), call)
	if err != nil || out.Challenge == nil {
		t.Fatalf("no challenge: %v %+v", err, out)
	}
	totp, _ := challenge.TOTPCode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", time.Now())
	answer, err := challenge.Answer(signer, out.Challenge, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: totp})
	if err != nil {
		t.Fatal(err)
	}
	call.Answer = answer
	passed, err := svc.Check(context.Background(), call)
	if err != nil || passed.Grant == "" {
		t.Fatalf("no grant: %v %+v", err, passed)
	}
	for _, tc := range []struct {
		name, value string
		want        []string
	}{
		{"challenge", out.Challenge.GetChallenge(), []string{"a step-up challenge (signed by the server)", "/bank.v1.BankService/AddPayee", "expires in"}},
		{"answer", answer, []string{"a step-up answer", "the challenge it answers:", "a step-up challenge", "otp        <redacted, 6 characters>"}},
		{"grant", passed.Grant, []string{"a step-up grant", "expires in", "unchecked the signature"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, code := stepup(t, dir, "", "inspect", tc.value)
			if code != 0 {
				t.Errorf("exit %d:\n%s", code, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, `"`+totp+`"`) {
				t.Errorf("the TOTP code %s is printed:\n%s", totp, got)
			}
		})
	}
}
