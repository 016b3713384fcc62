package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// guardTrail writes a trail in dir/trail with a real Guard: its key made
// by `stepup keygen` (dir/audit.jwk, public half dir/audit.pub.jwk), a
// TOTP step-up and its grant, plain calls, and an attacker (another user
// agent) replaying a captured call. With closed false the sink is flushed
// but not closed, as a running server's trail is. It returns the trail's
// files in chain order.
func guardTrail(t *testing.T, dir string, closed bool) []string {
	t.Helper()
	return guardTrailAgent(t, dir, closed, "mallory/0.1")
}

// guardTrailAgent is guardTrail with the user agent the attacker sends.
func guardTrailAgent(t *testing.T, dir string, closed bool, agent string) []string {
	t.Helper()
	ok(t, dir, "keygen", "--alg", "Ed25519", "--kid", "audit-1", "--out", "audit.jwk", "--pub", "audit.pub.jwk")
	key, err := auditlog.ReadSigningKey(filepath.Join(dir, "audit.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	trail := filepath.Join(dir, "trail")
	sink, err := auditlog.Open(trail, key, auditlog.WithReplica("bank-1"), auditlog.WithCheckpointEvery(8),
		auditlog.WithMaxFileSize(auditlog.MinFileSize), auditlog.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	var captured metadata.MD
	tap := grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		captured, _ = metadata.FromIncomingContext(ctx)
		return h(ctx, req)
	})
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithAuditSink(sink)}, tap)
	ctx := context.Background()
	for range 2 { // a TOTP step-up, then its grant
		if _, err := w.Relay.Whoami(ctx, &relayv1.WhoamiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 300 {
		if _, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("ping")}); err != nil {
			t.Fatal(err)
		}
	}
	mallory := relayv1.NewRelayServiceClient(w.RawConn(t, grpc.WithUserAgent(agent)))
	replay := metadata.AppendToOutgoingContext(ctx, "authorization", captured.Get("authorization")[0], "dpop", captured.Get("dpop")[0])
	if _, err := mallory.Echo(replay, &relayv1.EchoRequest{}); err == nil {
		t.Fatal("a replayed call was accepted")
	}
	if closed {
		err = sink.Close()
	} else {
		err = sink.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(trail, "*.jsonl"))
	sort.Strings(m)
	if len(m) < 3 {
		t.Fatalf("%d files", len(m))
	}
	return m
}

func editLines(t *testing.T, path string, edit func([]string) []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := edit(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyExitCodes tampers with trails written by a real Guard in
// each way stepup audit verify tells apart, and checks the exit code and
// the plain message of each.
func TestAuditVerifyExitCodes(t *testing.T) {
	for _, c := range []struct {
		name   string
		closed bool
		do     func(t *testing.T, dir string, files []string)
		code   int
		want   []string
	}{
		{"intact", true, func(*testing.T, string, []string) {}, 0,
			[]string{"valid checkpoints signed by audit-1; closed by its sink", "verified: 3 files"}},
		{"unverified tail", false, func(*testing.T, string, []string) {}, 3,
			[]string{"come after the chain's last checkpoint", "NOT VERIFIED", "exit code 3 (unverified_tail)"}},
		{"modified", true, func(t *testing.T, _ string, f []string) {
			editLines(t, f[0], func(l []string) []string {
				l[3] = strings.Replace(l[3], `"decision":"allow"`, `"decision":"deny"`, 1)
				return l
			})
		}, 4, []string{"MODIFIED", "entry seq 3 was modified"}},
		{"deleted", true, func(t *testing.T, _ string, f []string) {
			editLines(t, f[1], func(l []string) []string { return append(l[:10:10], l[12:]...) })
		}, 5, []string{"DELETED", "2 entries (seq", "missing before this line"}},
		{"inserted", true, func(t *testing.T, _ string, f []string) {
			editLines(t, f[1], func(l []string) []string { return append(l[:10:10], append([]string{l[5]}, l[10:]...)...) })
		}, 6, []string{"INSERTED", "a copy of entry seq"}},
		{"reordered", true, func(t *testing.T, _ string, f []string) {
			editLines(t, f[0], func(l []string) []string {
				l[4], l[5] = l[5], l[4]
				return l
			})
		}, 7, []string{"REORDERED", "out of order"}},
		{"a file missing in the middle", true, func(t *testing.T, _ string, f []string) {
			if err := os.Remove(f[1]); err != nil {
				t.Fatal(err)
			}
		}, 8, []string{"MISSING_FILE", "file 2 is not among the files"}},
		{"signed by another key", true, func(t *testing.T, dir string, _ []string) {
			ok(t, dir, "keygen", "--alg", "Ed25519", "--kid", "audit-2", "--out", "other.jwk", "--pub", "other.pub.jwk")
			if err := os.Rename(filepath.Join(dir, "other.pub.jwk"), filepath.Join(dir, "audit.pub.jwk")); err != nil {
				t.Fatal(err)
			}
		}, 9, []string{"UNKNOWN_KEY", `signed by key "audit-1", which the keys given do not hold (they hold "audit-2")`}},
		{"torn", true, func(t *testing.T, _ string, f []string) {
			fh, err := os.OpenFile(f[len(f)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			if _, err := fh.WriteString(`{"chain":"bank-1-2026`); err != nil {
				t.Fatal(err)
			}
		}, 10, []string{"TORN", "ends with an incomplete line (21 bytes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := guardTrail(t, dir, c.closed)
			c.do(t, dir, files)
			out, errOut, code := stepup(t, dir, "", "audit", "verify", "trail", "--keys", "audit.pub.jwk")
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			var res struct {
				OK       bool `json:"ok"`
				ExitCode int  `json:"exit_code"`
				Problems []struct {
					Kind    string `json:"kind"`
					Message string `json:"message"`
				} `json:"problems"`
			}
			js, _, jcode := stepup(t, dir, "", "audit", "verify", "--json", "--keys", "audit.pub.jwk", "trail")
			if err := json.Unmarshal([]byte(js), &res); err != nil || jcode != c.code || res.ExitCode != c.code || res.OK != (c.code == 0) {
				t.Errorf("--json: exit %d, %+v, %v\n%s", jcode, res, err, js)
			}
		})
	}
}

// TestAuditReport checks the report of a real Guard's trail in its three
// formats: the step-up method's fresh step-up and grant, the refusals, the
// token used from a second origin (the attacker's user agent), the replay
// per origin, and the must-be-zero exception.
func TestAuditReport(t *testing.T) {
	dir := t.TempDir()
	guardTrail(t, dir, true)
	out, errOut, code := stepup(t, dir, "", "audit", "report", "trail", "--keys", "audit.pub.jwk")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{
		"/relay.v1.RelayService/Whoami", "required", "totp 1",
		"STEPUP_REQUIRED", "DPOP_REPLAYED",
		"allowed calls to step-up methods without step-up evidence: 0 (must be 0)",
		"access tokens used from more than one origin: 1", "(mallory/0.1 grpc-go/",
		"replays refused, by origin: 1",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("the table lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(errOut, "the trail verifies") {
		t.Errorf("stderr: %s", errOut)
	}
	js, _, code := stepup(t, dir, "", "audit", "report", "--format", "json", "trail")
	var rep auditlog.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil || code != 0 {
		t.Fatalf("json: %v, exit %d\n%s", err, code, js)
	}
	var whoami, echo *auditlog.MethodReport
	for i := range rep.Methods {
		switch rep.Methods[i].Method {
		case "/relay.v1.RelayService/Whoami":
			whoami = &rep.Methods[i]
		case "/relay.v1.RelayService/Echo":
			echo = &rep.Methods[i]
		}
	}
	if whoami == nil || !whoami.StepUpRequired || whoami.Allowed != 2 || whoami.StepUp["totp"] != 1 || whoami.Grant["totp"] != 1 || whoami.Refused["STEPUP_REQUIRED"] != 1 {
		t.Errorf("Whoami: %+v", whoami)
	}
	if echo == nil || echo.StepUpRequired || echo.Allowed != 300 || echo.Refused["DPOP_REPLAYED"] != 1 {
		t.Errorf("Echo: %+v", echo)
	}
	if len(rep.Exceptions.WithoutStepUp) != 0 || len(rep.Exceptions.Tokens) != 1 || len(rep.Exceptions.Replays) != 1 ||
		!strings.HasPrefix(rep.Exceptions.Replays[0].Origin.UserAgent, "mallory/0.1 ") {
		t.Errorf("exceptions: %+v", rep.Exceptions)
	}
	csvOut, _, code := stepup(t, dir, "", "audit", "report", "trail", "--format", "csv", "--since", "2000-01-01")
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || code != 0 || strings.Join(rows[0], ",") != strings.Join(auditlog.CSVHeader, ",") {
		t.Fatalf("csv: %v exit %d\n%s", err, code, csvOut)
	}
	found := false
	for _, r := range rows {
		if strings.Join(r, ",") == "method,/relay.v1.RelayService/Whoami,step_up,totp,,1" {
			found = true
		}
	}
	if !found {
		t.Errorf("csv lacks the step-up row:\n%s", csvOut)
	}
	// A period with nothing in it.
	out, _, code = stepup(t, dir, "", "audit", "report", "trail", "--until", "2000-01-01")
	if code != 0 || !strings.Contains(out, "0 records from 0 chains") {
		t.Errorf("an empty period: exit %d\n%s", code, out)
	}
	if _, errOut, code := stepup(t, dir, "", "audit", "report", "trail", "--since", "last week"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("a bad time: exit %d %s", code, errOut)
	}
	// A tampered trail: the report is printed, with verify's exit code.
	m, _ := filepath.Glob(filepath.Join(dir, "trail", "*.jsonl"))
	sort.Strings(m)
	if err := os.Remove(m[1]); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = stepup(t, dir, "", "audit", "report", "trail", "--keys", "audit.pub.jwk")
	if code != 8 || !strings.Contains(errOut, "does NOT verify") || !strings.Contains(out, "Exceptions") {
		t.Errorf("a trail with a file missing: exit %d\n%s%s", code, out, errOut)
	}
}
