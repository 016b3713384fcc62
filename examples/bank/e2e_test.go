package bank_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/challenge"
)

const (
	issuerURL = "https://issuer.example"
	audience  = "https://bank.example"
	aliceIBAN = "DE89370400440532013000"
	// cmdTimeout bounds every command the test runs.
	cmdTimeout = time.Minute
)

// TestEndToEnd builds the server, client and issuer binaries and drives
// them as a user following README.md would: keys and a token, a server on
// loopback, a balance, a transfer approved with a TOTP code typed on stdin,
// one refused for a wrong code, a payee approved with a device key, and the
// audit lines the server wrote for each.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example binaries")
	}
	bin := buildCommands(t, "server", "client", "issuer")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }

	// The issuer's key, alice's DPoP key and a token bound to it.
	run(t, bin["issuer"], "", "init", "--dir", file("issuer"))
	jkt := strings.TrimSpace(run(t, bin["client"], "", "keygen", "--out", file("alice.jwk")))
	token := run(t, bin["issuer"], "", "mint", "--key", file("issuer/issuer.jwk"), "--sub", "alice", "--jkt", jkt,
		"--scope", "bank bank:transfer", "--issuer", issuerURL, "--audience", audience, "--ttl", "1h")
	writeFile(t, file("alice.token"), token)

	// Alice's second factors: a TOTP secret and a device key.
	secret := strings.TrimSpace(run(t, bin["issuer"], "", "totp-secret"))
	writeJSON(t, file("totp-secrets.json"), map[string]string{"alice": secret})
	run(t, bin["client"], "", "keygen", "--out", file("alice-device.jwk"))
	devicePub := run(t, bin["client"], "", "pubkey", "--key", file("alice-device.jwk"))
	writeFile(t, file("device-keys.json"), `{"alice": [`+devicePub+`]}`)

	// The key that signs the audit trail's checkpoints, and its public half.
	auditKeys := writeAuditKey(t, file("audit.jwk"))

	srv := startServer(t, bin["server"], "--listen", "127.0.0.1:0", "--insecure-plaintext", "--require-nonce",
		"--issuer", issuerURL, "--audience", audience, "--jwks", file("issuer/jwks.json"),
		"--totp-secrets", file("totp-secrets.json"), "--device-keys", file("device-keys.json"),
		"--admin-listen", "127.0.0.1:0",
		"--audit-dir", file("audit"), "--audit-key", file("audit.jwk"), "--audit-checkpoint-copy", file("checkpoints.jsonl"))
	conn := []string{"--addr", srv.addr, "--insecure-plaintext", "--key", file("alice.jwk"), "--token", file("alice.token")}
	client := func(stdin string, args ...string) (string, string, error) {
		return runCLI(t, bin["client"], stdin, append(args, conn...)...)
	}

	t.Run("health and reflection need no credentials", func(t *testing.T) {
		checkInfrastructure(t, srv.addr)
	})

	t.Run("balance", func(t *testing.T) {
		out, errOut, err := client("", "balance")
		if err != nil {
			t.Fatalf("balance: %v\n%s", err, errOut)
		}
		if want := "alice-checking: 1000.00 EUR"; !strings.Contains(out, want) {
			t.Errorf("balance printed %q, want %q", out, want)
		}
		srv.audit.waitFor(t, "GetBalance allowed", func(l auditLine) bool {
			return l.method("GetBalance") && l["decision"] == "allow" && l["subject"] == "alice"
		})
	})

	t.Run("transfer approved with a TOTP code on stdin", func(t *testing.T) {
		code, err := challenge.TOTPCode(secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out, errOut, err := client(code+"\n", "transfer", "--to", aliceIBAN, "--amount", "120.00", "--reference", "rent")
		if err != nil {
			t.Fatalf("transfer: %v\nstderr:\n%s", err, errOut)
		}
		for _, want := range []string{"approve BankService.Transfer: amount 120.00 EUR, to " + aliceIBAN, "amount: 120.00 EUR", "TOTP code: "} {
			if !strings.Contains(errOut, want) {
				t.Errorf("the prompt lacks %q:\n%s", want, errOut)
			}
		}
		if want := "balance after 880.00 EUR"; !strings.Contains(out, want) {
			t.Errorf("transfer printed %q, want %q", out, want)
		}
		srv.audit.waitFor(t, "Transfer step_up_passed with totp", func(l auditLine) bool {
			return l.method("Transfer") && l["decision"] == "step_up_passed" && l["factor"] == "totp" && l["via"] == "answer"
		})
	})

	t.Run("transfer refused for a wrong TOTP code", func(t *testing.T) {
		out, errOut, err := client(wrongCode(t, secret, time.Now())+"\n", "transfer", "--to", aliceIBAN, "--amount", "5000.00")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("transfer with a wrong code: err %v, want a non-zero exit\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		if !strings.Contains(errOut, "INSUFFICIENT_USER_AUTHENTICATION") {
			t.Errorf("stderr does not name the refusal:\n%s", errOut)
		}
		srv.audit.waitFor(t, "Transfer step_up_failed STEPUP_TOTP_INVALID", func(l auditLine) bool {
			return l.method("Transfer") && l["decision"] == "step_up_failed" && l["reason"] == "STEPUP_TOTP_INVALID"
		})
	})

	t.Run("payee approved with a device key", func(t *testing.T) {
		_, errOut, err := client("", "add-payee", "--name", "Landlord GmbH", "--iban", "DE02120300000000202051",
			"--device-key", file("alice-device.jwk"), "--grants", file("grants.json"))
		if err != nil {
			t.Fatalf("add-payee: %v\n%s", err, errOut)
		}
		if want := "approve BankService.AddPayee: payee Landlord GmbH"; !strings.Contains(errOut, want) {
			t.Errorf("the prompt lacks %q:\n%s", want, errOut)
		}
		srv.audit.waitFor(t, "AddPayee step_up_passed with device_key", func(l auditLine) bool {
			return l.method("AddPayee") && l["decision"] == "step_up_passed" && l["factor"] == "device_key"
		})
		if st, err := os.Stat(file("grants.json")); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("the grant file: %v %v", st, err)
		}
		// The next run reuses the grant: no prompt, no device key needed.
		_, errOut, err = client("", "add-payee", "--name", "Plumber", "--iban", "DE02120300000000202051", "--grants", file("grants.json"))
		if err != nil {
			t.Fatalf("second add-payee: %v\n%s", err, errOut)
		}
		if strings.Contains(errOut, "approve") {
			t.Errorf("prompted again despite the kept grant:\n%s", errOut)
		}
		srv.audit.waitFor(t, "AddPayee allowed via grant", func(l auditLine) bool {
			return l.method("AddPayee") && l["decision"] == "allow" && l["via"] == "grant"
		})
	})

	t.Run("streams", func(t *testing.T) {
		out, errOut, err := client("", "watch")
		if err != nil {
			t.Fatalf("watch: %v\n%s", err, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "-120.00 EUR\t"+aliceIBAN+"\trent") {
			t.Errorf("watch printed %q, want the one transfer of 120.00 EUR", out)
		}
		out, errOut, err = client("", "export", "--device-key", file("alice-device.jwk"))
		if err != nil {
			t.Fatalf("export: %v\n%s", err, errOut)
		}
		if !strings.Contains(out, "-120.00 EUR") {
			t.Errorf("export printed %q, want the transfer", out)
		}
		srv.audit.waitFor(t, "ExportStatements step_up_passed", func(l auditLine) bool {
			return l.method("ExportStatements") && l["decision"] == "step_up_passed" && l["stream"] == true
		})
	})

	t.Run("balance after", func(t *testing.T) {
		out, errOut, err := client("", "balance")
		if err != nil {
			t.Fatalf("balance: %v\n%s", err, errOut)
		}
		if want := "alice-checking: 880.00 EUR"; !strings.Contains(out, want) {
			t.Errorf("balance printed %q, want %q (only the approved transfer)", out, want)
		}
	})

	t.Run("audit lines hold no secrets", func(t *testing.T) {
		log := srv.audit.text()
		for name, s := range map[string]string{"access token": strings.TrimSpace(token), "TOTP secret": secret} {
			if strings.Contains(log, s) {
				t.Errorf("the server's stderr contains the %s", name)
			}
		}
	})

	t.Run("metrics on the admin port count the decisions", func(t *testing.T) {
		resp, err := http.Get(srv.metrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`stepup_decisions_total{decision="allow",method="/bank.v1.BankService/GetBalance",reason="ALLOWED"}`,
			`stepup_decisions_total{decision="step_up_passed",method="/bank.v1.BankService/Transfer",reason="ALLOWED"}`,
			`stepup_verification_duration_seconds_count{stage="proof"}`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	srv.stop(t)

	t.Run("the audit trail verifies and reports the step-ups", func(t *testing.T) {
		res, err := auditlog.Verify([]string{file("audit")}, auditlog.VerifyOptions{Keys: auditKeys, Checkpoints: []string{file("checkpoints.jsonl")}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() || len(res.Chains) != 1 || res.Chains[0].End != auditlog.EndClosed || res.Copies == 0 {
			t.Fatalf("%+v %d copies %v", res.Chains, res.Copies, res.Problems)
		}
		records, err := auditlog.ReadRecords([]string{file("audit")})
		if err != nil {
			t.Fatal(err)
		}
		rep := auditlog.NewReport(records, auditlog.ReportOptions{})
		steps := map[string]auditlog.MethodReport{}
		for _, m := range rep.Methods {
			steps[m.Method] = m
		}
		if m := steps["/bank.v1.BankService/Transfer"]; m.StepUp["totp"] != 1 || m.Refused["STEPUP_TOTP_INVALID"] != 1 || !m.StepUpRequired {
			t.Errorf("Transfer: %+v", m)
		}
		if m := steps["/bank.v1.BankService/AddPayee"]; m.StepUp["device_key"] != 1 || m.Grant["device_key"] != 1 {
			t.Errorf("AddPayee: %+v", m)
		}
		if len(rep.Exceptions.WithoutStepUp) != 0 {
			t.Errorf("allowed without step-up: %+v", rep.Exceptions.WithoutStepUp)
		}
		data, err := os.ReadFile(filepath.Join(file("audit"), auditlog.FileName(res.Chains[0].Chain, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), strings.TrimSpace(token)) || strings.Contains(string(data), secret) {
			t.Error("the audit trail holds the access token or the TOTP secret")
		}
	})
}

// writeAuditKey writes a new audit key (a private JWK with a kid) to path
// and returns the key set that verifies its checkpoints.
func writeAuditKey(t *testing.T, path string) *auditlog.KeySet {
	t.Helper()
	key, err := auditlog.GenerateKey("audit-1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := auditlog.MarshalPrivateJWK(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
	keys, err := key.PublicKeySet()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestInsecurePlaintextOnlyOnLoopback checks that the server refuses to
// serve, and the client to send, credentials in clear text off loopback.
func TestInsecurePlaintextOnlyOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example binaries")
	}
	bin := buildCommands(t, "server", "client")
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8443", "bank.example:8443"} {
		t.Run("server "+addr, func(t *testing.T) {
			out, errOut, err := runCLI(t, bin["server"], "", "--listen", addr, "--insecure-plaintext",
				"--issuer", issuerURL, "--audience", audience, "--jwks", "jwks.json", "--totp-secrets", "totp.json")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("server --insecure-plaintext --listen %s: err %v, want a non-zero exit", addr, err)
			}
			if strings.Contains(out, "listening") {
				t.Errorf("the server listened: %q", out)
			}
			if !strings.Contains(errOut, "--insecure-plaintext refused") || !strings.Contains(errOut, "not a loopback address") {
				t.Errorf("unclear refusal: %q", errOut)
			}
		})
	}
	t.Run("client", func(t *testing.T) {
		_, errOut, err := runCLI(t, bin["client"], "", "balance", "--addr", "192.0.2.1:8443", "--insecure-plaintext",
			"--key", "k.jwk", "--token", "t.jwt")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("client --insecure-plaintext to 192.0.2.1: err %v, want a non-zero exit", err)
		}
		if !strings.Contains(errOut, "not a loopback address") {
			t.Errorf("unclear refusal: %q", errOut)
		}
	})
}

// buildCommands builds the named commands of this directory into a
// temporary directory and returns their paths by name.
func buildCommands(t *testing.T, names ...string) map[string]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the examples: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	paths := map[string]string{}
	for _, n := range names {
		args = append(args, "./"+n)
		p := filepath.Join(dir, n)
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		paths[n] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return paths
}

// runCLI runs a command to completion with stdin and returns its stdout,
// its stderr and the error of exec.Cmd.Run.
func runCLI(t *testing.T, bin, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// run is runCLI for a command that must succeed; it returns its stdout.
func run(t *testing.T, bin, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, bin, stdin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errOut)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
}

// wrongCode returns a 6-digit code that is not valid for secret around now.
func wrongCode(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	valid := map[string]bool{}
	for step := -3; step <= 3; step++ {
		c, err := challenge.TOTPCode(secret, now.Add(time.Duration(step)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !valid[c] {
			return c
		}
	}
}

// checkInfrastructure calls health and reflection without any credentials.
func checkInfrastructure(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "bank.v1.BankService"})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health status %s, want SERVING", res.GetStatus())
	}
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var names []string
	for _, s := range reply.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "bank.v1.BankService") {
		t.Errorf("reflection lists %v, want bank.v1.BankService among them", names)
	}
	_ = stream.CloseSend()
}

// server is a running server binary.
type server struct {
	cmd   *exec.Cmd
	addr  string
	audit *auditLog
	// metrics is the /metrics URL, when --admin-listen was given.
	metrics string
	exited  chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's result, set before exited is closed
}

// startServer starts the server binary and waits for its listening line.
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, audit: newAuditLog(), exited: make(chan struct{})}
	go s.audit.consume(stderr)
	addr, metricsURL := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
			if m, ok := strings.CutPrefix(sc.Text(), "metrics on "); ok {
				metricsURL <- m
			}
		}
		// Wait only after the pipes are drained (exec.Cmd.StdoutPipe).
		<-s.audit.closed
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	select {
	case s.addr = <-addr:
		if slices.Contains(args, "--admin-listen") {
			select {
			case s.metrics = <-metricsURL:
			case <-time.After(cmdTimeout):
				t.Fatal("the server did not print its metrics line")
			}
		}
		return s
	case <-s.exited:
		t.Fatalf("the server exited before listening: %v\n%s", s.err, s.audit.text())
	case <-time.After(cmdTimeout):
		t.Fatalf("the server did not print its listening line\n%s", s.audit.text())
	}
	return nil
}

// stop sends SIGINT and checks that the server shuts down cleanly.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = s.cmd.Process.Kill() // no SIGINT on this platform
	}
	select {
	case <-s.exited:
		if s.err != nil && runtime.GOOS != "windows" {
			t.Errorf("the server exited with %v after SIGINT\n%s", s.err, s.audit.text())
		}
	case <-time.After(cmdTimeout):
		t.Fatalf("the server did not stop after SIGINT")
	}
	s.audit.waitFor(t, "stopped", func(l auditLine) bool { return l["msg"] == "stopped" })
}

// auditLine is one JSON line of the server's stderr.
type auditLine map[string]any

// method reports whether the line is an audit event of a BankService method.
func (l auditLine) method(name string) bool {
	return l["msg"] == "stepup.audit" && l["method"] == "/bank.v1.BankService/"+name
}

// auditLog collects the server's stderr as it is written.
type auditLog struct {
	mu      sync.Mutex
	raw     strings.Builder
	lines   []auditLine
	changed chan struct{} // closed and replaced on every new line
	closed  chan struct{} // closed when stderr ends
}

func newAuditLog() *auditLog {
	return &auditLog{changed: make(chan struct{}), closed: make(chan struct{})}
}

func (a *auditLog) consume(r io.Reader) {
	defer close(a.closed)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l auditLine
		_ = json.Unmarshal(sc.Bytes(), &l) // a line that is not JSON is kept as raw text only
		a.mu.Lock()
		a.raw.WriteString(sc.Text() + "\n")
		if l != nil {
			a.lines = append(a.lines, l)
		}
		close(a.changed)
		a.changed = make(chan struct{})
		a.mu.Unlock()
	}
}

func (a *auditLog) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw.String()
}

// waitFor waits until a line satisfies match. The server writes an audit
// line before it answers the call, but the pipe may deliver it later.
func (a *auditLog) waitFor(t *testing.T, what string, match func(auditLine) bool) {
	t.Helper()
	timeout := time.NewTimer(cmdTimeout)
	defer timeout.Stop()
	for {
		a.mu.Lock()
		for _, l := range a.lines {
			if match(l) {
				a.mu.Unlock()
				return
			}
		}
		changed := a.changed
		a.mu.Unlock()
		select {
		case <-changed:
		case <-a.closed:
			a.mu.Lock()
			found := slices.ContainsFunc(a.lines, match)
			a.mu.Unlock()
			if !found {
				t.Fatalf("no server log line: %s\n%s", what, a.text())
			}
			return
		case <-timeout.C:
			t.Fatalf("no server log line: %s\n%s", what, a.text())
		}
	}
}
