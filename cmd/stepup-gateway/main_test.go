package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/gateway"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// build compiles the command once per test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stepup-gateway")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeConfig writes an open relay API's descriptor set and a config of it
// (plaintext on loopback) into a directory, with extra appended.
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	return writeConfigIn(t, t.TempDir(), "insecure_plaintext: true\n", extra)
}

// writeConfigIn is writeConfig into dir, with transport (the TLS or
// plaintext fields) in place of insecure_plaintext.
func writeConfigIn(t *testing.T, dir, transport, extra string) string {
	t.Helper()
	b, err := gateway.DescriptorSet(relayv1.File_relay_v1_relay_proto)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "api.binpb"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `listen: "127.0.0.1:0"
` + transport + `backend: {address: "127.0.0.1:1", insecure_plaintext: true}
descriptor_sets: [api.binpb]
insecure_open_services: [relay.v1.RelayService]
assertion: {issuer: "https://gateway.example", audience: relay}
` + extra
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// printed reads the command's output and sends, for each prefix, the rest
// of the first line that starts with it.
func printed(out io.Reader, prefixes ...string) map[string]chan string {
	chs := map[string]chan string{}
	for _, p := range prefixes {
		chs[p] = make(chan string, 1)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			for p, ch := range chs {
				if v, ok := strings.CutPrefix(sc.Text(), p); ok {
					select {
					case ch <- v:
					default:
					}
				}
			}
		}
	}()
	return chs
}

// await returns what ch sends within 30 s, or fails with msg.
func await(t *testing.T, ch <-chan string, msg string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal(msg)
		return ""
	}
}

func TestBadConfigExitsBeforeListening(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"unknown field", "listn: x\n", `unknown field "listn"`},
		{"unknown method", "policies: {\"/relay.v1.RelayService/Ech\": {scopes: [a]}}\n", `did you mean "/relay.v1.RelayService/Echo"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.extra)
			cmd := exec.Command(bin, "--config", path)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1\n%s", err, out)
			}
			if !strings.Contains(string(out), path+": ") || !strings.Contains(string(out), tc.want) {
				t.Errorf("output\n%s\nwant the file and %q", out, tc.want)
			}
			if strings.Contains(string(out), "listening on") {
				t.Error("it listened")
			}
		})
	}
	t.Run("no --config", func(t *testing.T) {
		err := exec.Command(bin).Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("exit %v, want 2", err)
		}
	})
	t.Run("--check", func(t *testing.T) {
		out, err := exec.Command(bin, "--config", writeConfig(t, ""), "--check").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration ok") || strings.Contains(string(out), "warning") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("--check warns about a bound method that shows nothing", func(t *testing.T) {
		path := writeStepUpConfig(t, `
  "/relay.v1.RelayService/Pay": {step_up: {factors: [FACTOR_TOTP], bind_request: true}}
  "/relay.v1.RelayService/Fail": {step_up: {factors: [FACTOR_TOTP], bind_request: true}}
`, "")
		out, err := exec.Command(bin, "--config", path, "--check").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "configuration ok") {
			t.Fatalf("%v\n%s", err, out)
		}
		var warnings []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "warning: ") {
				warnings = append(warnings, l)
			}
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "/relay.v1.RelayService/Fail binds its request") ||
			!strings.Contains(warnings[0], "relay.v1.FailRequest has no display field") {
			t.Errorf("warnings %q, want one for Fail (Pay declares a display field)", warnings)
		}
	})
}

// writeStepUpConfig writes a gateway configuration with a token issuer,
// TOTP step-up, the scope relay on RelayService, the given method policies
// (YAML lines under policies) and display of PayRequest.payee, with extra
// appended, and returns its path.
func writeStepUpConfig(t *testing.T, methodPolicies, extra string) string {
	t.Helper()
	path := writeConfig(t, "")
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), testkit.NewIssuer(t).PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "totp.json"), []byte(`{"alice":"JBSWY3DPEHPK3PXP"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `listen: "127.0.0.1:0"
insecure_plaintext: true
backend: {address: "127.0.0.1:1", insecure_plaintext: true}
descriptor_sets: [api.binpb]
policies:
  "relay.v1.RelayService": {scopes: [relay]}` + methodPolicies + `token: {issuer: "https://issuer.example", audience: relay, jwks_file: jwks.json}
step_up: {totp_secrets_file: totp.json}
assertion: {issuer: "https://gateway.example", audience: relay}
display: {"relay.v1.PayRequest.payee": {label: to}}
` + extra
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeAndDrainOnSIGTERM(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "--config", writeConfig(t, "jwks_listen: \"127.0.0.1:0\"\nmetrics_listen: \"127.0.0.1:0\"\n"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := printed(stdout, "listening on ", "metrics on ")
	a := await(t, lines["listening on "], "it did not listen")
	cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
	// An open service's call, counted on /metrics.
	if err := cc.Invoke(context.Background(), "/relay.v1.RelayService/Echo", &relayv1.EchoRequest{}, &relayv1.EchoResponse{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("echo to a down backend: %v", err)
	}
	resp2, err := http.Get(await(t, lines["metrics on "], "it did not serve metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if !strings.Contains(string(body), `stepup_decisions_total{decision="allow",method="/relay.v1.RelayService/Echo",reason="NO_AUTHENTICATION_REQUIRED"} 1`) {
		t.Errorf("/metrics:\n%s", body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("it did not stop")
	}
}

// TestJWKSServedOverTLS: jwks_listen serves the assertion keys over TLS
// with the gateway's certificate, so a backend fetching them learns them
// from the gateway and from nobody on the path; a plain HTTP request gets
// no key. Before, jwks_listen served plain HTTP whatever the gateway's TLS.
func TestJWKSServedOverTLS(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cert := testkit.NewCert(t, "gateway.example", "127.0.0.1")
	certFile, keyFile := cert.WriteFiles(t, dir, "gateway")
	path := writeConfigIn(t, dir, "tls: {cert_file: "+certFile+", key_file: "+keyFile+"}\n",
		"dpop: {authorities: [gateway.example]}\njwks_listen: \"127.0.0.1:0\"\n")
	cmd := exec.Command(bin, "--config", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	u := await(t, printed(stdout, "jwks on ")["jwks on "], "it did not serve the JWKS")
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("jwks on %s, want https", u)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"keys"`) || resp.TLS == nil {
		t.Fatalf("%s: %s %s", u, resp.Status, body)
	}
	plain := "http://" + strings.TrimPrefix(u, "https://")
	if resp, err := client.Get(plain); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `"keys"`) {
			t.Fatalf("%s served the keys in plain HTTP", plain)
		}
	}
}

// TestCheckPrintsThePolicyTable: --check prints the effective policy of
// every method (the service's scopes united with the method's, the
// step-up, the request fields the approval shows), and stepup policies
// --config prints the same table for the same file, as text and as JSON.
func TestCheckPrintsThePolicyTable(t *testing.T) {
	bin := build(t)
	cliBin := filepath.Join(t.TempDir(), "stepup")
	if out, err := exec.Command("go", "build", "-o", cliBin, "../stepup").CombinedOutput(); err != nil {
		t.Fatalf("go build ../stepup: %v\n%s", err, out)
	}
	path := writeStepUpConfig(t, `
  "/relay.v1.RelayService/Pay": {scopes: [pay], step_up: {factors: [FACTOR_TOTP], bind_request: true}}
`, "insecure_open_services: [relay.v1.StatsService]\n")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\n%s%s", filepath.Base(name), args, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	for _, format := range [][]string{nil, {"--json"}} {
		check := run(bin, append([]string{"--config", path, "--check"}, format...)...)
		policies := run(cliBin, append([]string{"policies", "--config", path}, format...)...)
		if check != policies {
			t.Errorf("%v: stepup-gateway --check printed\n%s\nstepup policies --config printed\n%s", format, check, policies)
		}
		if format != nil {
			var rows []gateway.PolicyRow
			if err := json.Unmarshal([]byte(check), &rows); err != nil {
				t.Fatal(err)
			}
			byName := map[string]gateway.PolicyRow{}
			for _, r := range rows {
				byName[r.Method] = r
			}
			pay := byName["/relay.v1.RelayService/Pay"]
			if !slices.Equal(pay.Scopes, []string{"relay", "pay"}) || !pay.StepUp || !slices.Equal(pay.Factors, []string{"totp"}) ||
				pay.MaxAge != "every call" || !pay.BindRequest || !slices.Equal(pay.Display, []string{"payee"}) || pay.Problem != "" {
				t.Errorf("Pay: %+v", pay)
			}
			if echo := byName["/relay.v1.RelayService/Echo"]; !slices.Equal(echo.Scopes, []string{"relay"}) || echo.StepUp || echo.Authentication != "DPoP-bound token" {
				t.Errorf("Echo: %+v", echo)
			}
			if stats := byName["/relay.v1.StatsService/Stats"]; stats.Authentication != "none (insecure_no_authentication)" {
				t.Errorf("Stats: %+v", stats)
			}
			continue
		}
		var pay string
		for _, l := range strings.Split(check, "\n") {
			if strings.HasPrefix(l, "/relay.v1.RelayService/Pay ") {
				pay = strings.Join(strings.Fields(l), " ")
			}
		}
		if want := "/relay.v1.RelayService/Pay unary DPoP-bound token relay pay totp every call yes payee -"; pay != want {
			t.Errorf("Pay's row %q, want %q\n%s", pay, want, check)
		}
	}
}
