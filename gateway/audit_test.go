package gateway_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/auditlog"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// TestGatewayAuditTrail runs calls through a gateway configured with
// audit_log and checks, after its shutdown, that the trail verifies with
// the key's public half (and against the checkpoint copies), and that it
// holds the step-up the Guard required for a transfer.
func TestGatewayAuditTrail(t *testing.T) {
	dir := t.TempDir()
	key, err := auditlog.GenerateKey("gw-audit-1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := auditlog.MarshalPrivateJWK(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "audit.jwk", data)
	copyFile := filepath.Join(dir, "checkpoints.jsonl")
	w := newWorld(t, func(c *stepupv1.GatewayConfig) {
		c.AuditLog = &stepupv1.AuditLogConfig{Dir: filepath.Join(dir, "trail"), KeyFile: keyFile, Replica: "gw-1",
			CheckpointEvery: 3, CheckpointInterval: durationpb.New(0), CheckpointCopyFile: copyFile}
	})
	ctx := context.Background()
	transfer := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 1250, Currency: "EUR", ToIban: "DE89370400440532013000"}
	if _, err := w.alice.bank.Transfer(ctx, transfer); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := w.bob.relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("ping")}); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w.gw.gw.Shutdown(sctx)

	keys, err := key.PublicKeySet()
	if err != nil {
		t.Fatal(err)
	}
	res, err := auditlog.Verify([]string{filepath.Join(dir, "trail")}, auditlog.VerifyOptions{Keys: keys, Checkpoints: []string{copyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Chains) != 1 || res.Chains[0].End != auditlog.EndClosed || res.Chains[0].Replica != "gw-1" ||
		res.Chains[0].Records != 7 || res.Copies < 3 {
		dump, _ := auditlog.ReadRecords([]string{filepath.Join(dir, "trail")})
		for _, r := range dump {
			t.Logf("%s %s %s", r.Method, r.Decision, r.Reason)
		}
		t.Fatalf("%+v, %d copies\n%v", res.Chains, res.Copies, res.Problems)
	}
	records, err := auditlog.ReadRecords([]string{filepath.Join(dir, "trail")})
	if err != nil {
		t.Fatal(err)
	}
	rep := auditlog.NewReport(records, auditlog.ReportOptions{})
	found := false
	for _, m := range rep.Methods {
		if m.Method == mTransfer {
			found = true
			if m.StepUp["totp"] != 1 || !m.StepUpRequired || m.Refused["STEPUP_REQUIRED"] != 1 {
				t.Errorf("Transfer: %+v", m)
			}
		}
	}
	if !found || len(rep.Exceptions.WithoutStepUp) != 0 {
		t.Errorf("report %+v", rep)
	}
}
