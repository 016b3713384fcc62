package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

// cliWorld is the bank example server started as a process, and the files
// of a user who calls it with the stepup command only: an issuer key whose
// JWK Set the server reads (keygen --jwks), a DPoP key, a token bound to
// it, a TOTP secret and a registered device key.
type cliWorld struct {
	dir, addr, secret string
	bank              bankv1.BankServiceClient
}

const transferMethod = "/bank.v1.BankService/Transfer"

func startCLIWorld(t *testing.T) *cliWorld {
	t.Helper()
	w := &cliWorld{dir: t.TempDir(), secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}
	server := filepath.Join(w.dir, "bank-server")
	if out, err := exec.Command("go", "build", "-o", server, "../../examples/bank/server").CombinedOutput(); err != nil {
		t.Fatalf("go build the bank server: %v\n%s", err, out)
	}
	ok(t, w.dir, "keygen", "--out", "issuer.jwk", "--jwks", "issuer.jwks")
	ok(t, w.dir, "keygen", "--out", "client.jwk")
	ok(t, w.dir, "keygen", "--out", "device.jwk", "--pub", "device.pub.jwk")
	devicePub, err := os.ReadFile(filepath.Join(w.dir, "device.pub.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("totp.json", `{"alice": "`+w.secret+`"}`)
	write("devices.json", `{"alice": [`+strings.TrimSpace(string(devicePub))+`]}`)
	write("token", ok(t, w.dir, "token", "--issuer-key", "issuer.jwk", "--key", "client.jwk",
		"--iss", "https://issuer.example", "--aud", "https://bank.example", "--scope", "bank bank:transfer"))
	w.addr = startProcess(t, w.dir, server, "--listen", "127.0.0.1:0", "--insecure-plaintext",
		"--issuer", "https://issuer.example", "--audience", "https://bank.example", "--jwks", "issuer.jwks",
		"--totp-secrets", "totp.json", "--device-keys", "devices.json")
	cc, err := grpc.NewClient(w.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	w.bank = bankv1.NewBankServiceClient(cc)
	return w
}

// startProcess starts a server that prints "listening on ADDR" and returns
// ADDR; the process is killed (by its PID) when the test ends.
func startProcess(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, found := strings.CutPrefix(sc.Text(), "listening on "); found {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not listen:\n%s", filepath.Base(bin), stderr.String())
		return ""
	}
}

// transfer calls Transfer with the headers a grpcurl user passes with -H:
// the token, a proof made by stepup proof, and extra ("name: value").
// It returns the refusal's grpc-status-details-bin, base64, and the proof.
func (w *cliWorld) transfer(t *testing.T, req *bankv1.TransferRequest, extra ...string) (string, string, error) {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(w.dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	proof := ok(t, w.dir, "proof", "--key", "client.jwk", "--token", "token", "--authority", w.addr, "--method", transferMethod, "--http")
	md := metadata.Pairs("authorization", "DPoP "+strings.TrimSpace(string(token)), "dpop", proof)
	for _, h := range extra {
		name, value, found := strings.Cut(h, ": ")
		if !found {
			t.Fatalf("not a header line: %q", h)
		}
		md.Append(name, value)
	}
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 30*time.Second)
	defer cancel()
	_, err = w.bank.Transfer(ctx, req)
	if err == nil {
		return "", proof, nil
	}
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		t.Fatal(merr)
	}
	return base64.StdEncoding.EncodeToString(b), proof, err
}

// TestAnswerReachesStepUpMethods follows docs/CLI.md against the bank
// server: the call is refused with a challenge, stepup answer answers it
// (a TOTP code from the secret, then a device key), and the same call
// retried with the printed header and a new proof succeeds.
func TestAnswerReachesStepUpMethods(t *testing.T) {
	w := startCLIWorld(t)
	for _, tc := range []struct{ name, flag, value string }{
		{"totp", "--totp-secret", ""},
		{"device key", "--device-key", "device.jwk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &bankv1.TransferRequest{FromAccountId: "alice-checking", ToIban: "DE02100100109307118603", AmountMinor: 1200, Currency: "EUR", Reference: tc.name}
			refusal, _, err := w.transfer(t, req)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("first call: %v, want a step-up refusal", err)
			}
			value := tc.value
			if value == "" {
				value = w.secret
			}
			header, errOut, code := stepup(t, w.dir, refusal, "answer", "-", "--key", "client.jwk", tc.flag, value, "--method", transferMethod)
			if code != 0 || !strings.HasPrefix(header, interceptor.MetadataStepUpAnswer+": ") {
				t.Fatalf("stepup answer: exit %d\n%s%s", code, header, errOut)
			}
			if !strings.Contains(errOut, "12.00 EUR") {
				t.Errorf("stepup answer does not show what is approved: %q", errOut)
			}
			if _, _, err := w.transfer(t, req, strings.TrimSpace(header)); err != nil {
				t.Fatalf("the call retried with the printed header: %v", err)
			}
			// The answer is bound to that request: another amount is refused.
			other := proto.Clone(req).(*bankv1.TransferRequest)
			other.AmountMinor = 99900
			if _, _, err := w.transfer(t, other, strings.TrimSpace(header)); status.Code(err) != codes.Unauthenticated {
				t.Errorf("the answer reused for another request: %v", err)
			}
		})
	}
	t.Run("a challenge for another method", func(t *testing.T) {
		refusal, _, _ := w.transfer(t, &bankv1.TransferRequest{FromAccountId: "alice-checking", ToIban: "DE02100100109307118603", AmountMinor: 1, Currency: "EUR"})
		_, errOut, code := stepup(t, w.dir, "", "answer", refusal, "--key", "client.jwk", "--device-key", "device.jwk", "--method", "/bank.v1.BankService/AddPayee")
		if code != 1 || !strings.Contains(errOut, "the challenge is for "+transferMethod) {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("buf curl", func(t *testing.T) {
		// docs/CLI.md's recipe as written: buf curl's error JSON in, the
		// header out, buf curl again (the server serves reflection).
		buf, err := filepath.Abs("../../bin/buf")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(buf); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("needs the pinned tools: make tools")
			}
			t.Skip("needs the pinned tools: make tools")
		}
		body := `{"from_account_id": "alice-checking", "to_iban": "DE02100100109307118603", "amount_minor": 700, "currency": "EUR"}`
		curl := func(extra ...string) (string, string, error) {
			t.Helper()
			token, err := os.ReadFile(filepath.Join(w.dir, "token"))
			if err != nil {
				t.Fatal(err)
			}
			proof := ok(t, w.dir, "proof", "--key", "client.jwk", "--token", "token", "--authority", w.addr, "--method", transferMethod, "--http")
			args := []string{"curl", "--protocol", "grpc", "--http2-prior-knowledge",
				"-H", "authorization: DPoP " + strings.TrimSpace(string(token)), "-H", "dpop: " + proof}
			for _, h := range extra {
				args = append(args, "-H", h)
			}
			cmd := exec.Command(buf, append(args, "-d", body, "http://"+w.addr+transferMethod)...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			return stdout.String(), stderr.String(), err
		}
		_, refusal, err := curl()
		if err == nil || !strings.Contains(refusal, "stepup.v1.StepUpChallenge") {
			t.Fatalf("first call: %v\n%s", err, refusal)
		}
		header, errOut, code := stepup(t, w.dir, refusal, "answer", "--key", "client.jwk", "--device-key", "device.jwk", "--method", transferMethod)
		if code != 0 || !strings.HasPrefix(header, interceptor.MetadataStepUpAnswer+": ") {
			t.Fatalf("exit %d\n%s%s", code, header, errOut)
		}
		out, errOut, err := curl(strings.TrimSpace(header))
		if err != nil || !strings.Contains(out, "transferId") {
			t.Errorf("the retry: %v\n%s%s", err, out, errOut)
		}
	})
}

// TestInspectProofOfARefusal: inspect --proof says whether a refusal is for
// the proof given (proof_sha256) and names the check that failed; a refusal
// is never "no problem found".
func TestInspectProofOfARefusal(t *testing.T) {
	w := startCLIWorld(t)
	req := &bankv1.TransferRequest{FromAccountId: "alice-checking", ToIban: "DE02100100109307118603", AmountMinor: 3, Currency: "EUR"}
	refusal, proof, err := w.transfer(t, req)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "proof"), []byte(proof), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--token", "token", "--authority", w.addr, "--http"}
	t.Run("the step-up refusal of a good proof", func(t *testing.T) {
		out, _, code := stepup(t, w.dir, "", append([]string{"inspect", refusal, "--proof", "proof", "--method", transferMethod}, flags...)...)
		for _, want := range []string{"the refusal is for this proof", "(INSUFFICIENT_USER_AUTHENTICATION)", "stepup answer"} {
			if !strings.Contains(out, want) {
				t.Errorf("lacks %q:\n%s", want, out)
			}
		}
		if code != 1 || strings.Contains(out, "no problem found") {
			t.Errorf("exit %d for a refusal:\n%s", code, out)
		}
	})
	t.Run("another proof", func(t *testing.T) {
		other := ok(t, w.dir, "proof", "--key", "client.jwk", "--token", "token", "--authority", w.addr, "--method", transferMethod, "--http")
		out, _, code := stepup(t, w.dir, "", append([]string{"inspect", refusal, "--proof", other, "--method", transferMethod}, flags...)...)
		if code != 1 || !strings.Contains(out, "the refusal is for another proof") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("a proof for another method", func(t *testing.T) {
		// The user made the proof for GetBalance and called Transfer.
		bad := ok(t, w.dir, "proof", "--key", "client.jwk", "--token", "token", "--authority", w.addr, "--method", "/bank.v1.BankService/GetBalance", "--http")
		token, _ := os.ReadFile(filepath.Join(w.dir, "token"))
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "DPoP "+strings.TrimSpace(string(token)), "dpop", bad)
		_, err := w.bank.Transfer(ctx, req)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatal(err)
		}
		b, _ := proto.Marshal(status.Convert(err).Proto())
		out, _, code := stepup(t, w.dir, "", append([]string{"inspect", base64.StdEncoding.EncodeToString(b), "--proof", bad, "--method", transferMethod}, flags...)...)
		for _, want := range []string{"the refusal is for this proof", "(INVALID_DPOP_PROOF)", "(DPOP_BAD_HTU)"} {
			if !strings.Contains(out, want) {
				t.Errorf("lacks %q:\n%s", want, out)
			}
		}
		if code != 1 {
			t.Errorf("exit %d", code)
		}
	})
}

// TestKeygenJWKSAndThumbprintOfAJWT: keygen --jwks writes a JWK Set whose
// key has a kid and an alg; thumbprint given a JWT (as a value or a file)
// points to inspect instead of failing on the format.
func TestKeygenJWKSAndThumbprintOfAJWT(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args          []string
		kid, alg, crv string
	}{
		{[]string{"--alg", "ES256"}, "", "ES256", "P-256"},
		{[]string{"--alg", "Ed25519", "--kid", "issuer-1"}, "issuer-1", "EdDSA", "Ed25519"},
	} {
		jkt := ok(t, dir, append([]string{"keygen", "--out", tc.alg + ".jwk", "--jwks", tc.alg + ".jwks"}, tc.args...)...)
		b, err := os.ReadFile(filepath.Join(dir, tc.alg+".jwks"))
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("%s: %v %s", tc.alg, err, b)
		}
		k := set.Keys[0]
		want := tc.kid
		if want == "" {
			want = jkt
		}
		if k["kid"] != want || k["alg"] != tc.alg || k["crv"] != tc.crv || k["d"] != nil {
			t.Errorf("%s: the JWK Set's key is %v, want kid %s, alg %s, no private member", tc.alg, k, want, tc.alg)
		}
	}
	token := ok(t, dir, "token", "--issuer-key", "ES256.jwk", "--key", "EdDSA.jwk", "--iss", "https://i.example", "--aud", "https://a.example")
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{token, "token"} {
		_, errOut, code := stepup(t, dir, "", "thumbprint", "--key", arg)
		if code != 1 || !strings.Contains(errOut, "this is a JWT") || !strings.Contains(errOut, "stepup inspect") {
			t.Errorf("thumbprint --key %.10s…: exit %d %s", arg, code, errOut)
		}
	}
}

// TestInspectRefusalIsAProblem: a refusal without a challenge (a bad token)
// is a problem, exit 1, never "no problem found".
func TestInspectRefusalIsAProblem(t *testing.T) {
	info, _ := anypb.New(&errdetails.ErrorInfo{Reason: interceptor.WireInvalidToken, Domain: interceptor.ErrorDomain,
		Metadata: map[string]string{interceptor.ErrorInfoProofHash: "WAOjQZKiPrtSrGxGCIytlRBW8XXPmzxslDGf1FKJlX4"}})
	b, err := proto.Marshal(&spb.Status{Code: int32(codes.Unauthenticated), Message: "stepup: authentication failed", Details: []*anypb.Any{info}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := stepup(t, t.TempDir(), "", "inspect", base64.StdEncoding.EncodeToString(b))
	if code != 1 || strings.Contains(out, "no problem found") || !strings.Contains(out, "the server refused the call (INVALID_TOKEN)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
