package auditlog_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
)

// TestReportFigures checks each figure of a report on records made for
// it, the cases a real Guard does not produce among them (an allowed
// step-up call without evidence: what the report exists to catch).
func TestReportFigures(t *testing.T) {
	at := func(min int) string {
		return start.Add(time.Duration(min) * time.Minute).Format("2006-01-02T15:04:05.000000000Z")
	}
	rec := func(min int, method, decision, reason string, f func(*auditlog.Entry)) *auditlog.Entry {
		e := &auditlog.Entry{Kind: auditlog.KindRecord, Chain: "bank-1-20261127T041934Z-0123456789abcdef", Seq: int64(min + 1), Time: at(min),
			Method: method, Decision: decision, Reason: reason, Code: "OK", Peer: "192.0.2.7:50123", UserAgent: "bank-app/2.1",
			Subject: "alice", TokenID: "at-1", JKT: "key-a"}
		if f != nil {
			f(e)
		}
		return e
	}
	const transfer, balance = "/bank.v1.BankService/Transfer", "/bank.v1.BankService/GetBalance"
	stepUp := func(e *auditlog.Entry) { e.StepUpRequired = true }
	records := []*auditlog.Entry{
		rec(0, balance, "allow", "ALLOWED", nil),
		rec(1, transfer, "challenge", "STEPUP_REQUIRED", func(e *auditlog.Entry) { e.StepUpRequired, e.Code = true, "UNAUTHENTICATED" }),
		rec(2, transfer, "step_up_passed", "ALLOWED", func(e *auditlog.Entry) { e.StepUpRequired, e.Via, e.Factor = true, "answer", "totp" }),
		rec(3, transfer, "step_up_passed", "ALLOWED", func(e *auditlog.Entry) { e.StepUpRequired, e.Via, e.Factor = true, "answer", "approval" }),
		rec(4, transfer, "allow", "ALLOWED", func(e *auditlog.Entry) { e.StepUpRequired, e.Via, e.Factor = true, "grant", "totp" }),
		rec(5, transfer, "allow", "ALLOWED", func(e *auditlog.Entry) { e.StepUpRequired, e.Via = true, "token" }),
		rec(6, transfer, "allow", "ALLOWED", stepUp), // no evidence: the exception
		// The token from another origin; the same key from a third.
		rec(7, balance, "deny", "DPOP_KEY_MISMATCH", func(e *auditlog.Entry) { e.Peer, e.UserAgent, e.JKT = "198.51.100.9:4242", "curl/8", "" }),
		rec(8, balance, "deny", "DPOP_REPLAYED", func(e *auditlog.Entry) { e.Peer, e.UserAgent = "198.51.100.9:4243", "curl/8" }),
		rec(9, balance, "deny", "DPOP_REPLAYED", func(e *auditlog.Entry) { e.Peer, e.UserAgent = "198.51.100.9:4244", "curl/8" }),
		rec(10, transfer, "step_up_failed", "STEPUP_ATTEMPTS_EXCEEDED", func(e *auditlog.Entry) {
			e.StepUpRequired, e.Code, e.Peer, e.TokenID, e.JKT = true, "PERMISSION_DENIED", "203.0.113.5:1", "at-2", "key-a"
		}),
		// A refused answer that got a new challenge is not a lock-out.
		rec(11, transfer, "step_up_failed", "STEPUP_ATTEMPTS_EXCEEDED", func(e *auditlog.Entry) { e.StepUpRequired, e.Code = true, "UNAUTHENTICATED" }),
		rec(12, "/bank.v1.BankService/ExportStatements", "shadow_deny", "STEPUP_REQUIRED", stepUp),
		rec(13, transfer, "approval_approved", "ALLOWED", nil),
		rec(14, transfer, "approval_pending", "STEPUP_APPROVAL_PENDING", func(e *auditlog.Entry) { e.StepUpRequired, e.Code = true, "UNAVAILABLE" }),
		rec(60, balance, "allow", "ALLOWED", nil), // outside the period
	}
	rep := auditlog.NewReport(records, auditlog.ReportOptions{Since: start, Until: start.Add(time.Hour)})
	if rep.Records != 15 || rep.Chains != 1 || rep.Other["approval_approved"] != 1 {
		t.Errorf("records %d, chains %d, other %v", rep.Records, rep.Chains, rep.Other)
	}
	byMethod := map[string]auditlog.MethodReport{}
	for _, m := range rep.Methods {
		byMethod[m.Method] = m
	}
	tr := byMethod[transfer]
	if !tr.StepUpRequired || tr.Calls != 9 || tr.Pending != 1 || len(tr.Refused) != 2 || tr.Allowed != 5 || tr.StepUp["totp"] != 1 || tr.StepUp["approval"] != 1 ||
		tr.Grant["totp"] != 1 || tr.Token != 1 || tr.Refused["STEPUP_REQUIRED"] != 1 || tr.Refused["STEPUP_ATTEMPTS_EXCEEDED"] != 2 {
		t.Errorf("Transfer: %+v", tr)
	}
	if b := byMethod[balance]; b.StepUpRequired || b.Calls != 4 || b.Allowed != 1 || b.Refused["DPOP_REPLAYED"] != 2 {
		t.Errorf("GetBalance: %+v", b)
	}
	if ex := byMethod["/bank.v1.BankService/ExportStatements"]; ex.Shadow["STEPUP_REQUIRED"] != 1 || ex.Allowed != 0 {
		t.Errorf("ExportStatements: %+v", ex)
	}
	x := rep.Exceptions
	if len(x.WithoutStepUp) != 1 || x.WithoutStepUp[0].Seq != 7 {
		t.Errorf("without step-up: %+v", x.WithoutStepUp)
	}
	if len(x.Tokens) != 1 || x.Tokens[0].ID != "at-1" || len(x.Tokens[0].Origins) != 2 || x.Tokens[0].Origins[1].Refused != 3 ||
		x.Tokens[0].Origins[1].Origin != (auditlog.Origin{Host: "198.51.100.9", UserAgent: "curl/8"}) {
		t.Errorf("tokens: %+v", x.Tokens)
	}
	if len(x.Keys) != 1 || x.Keys[0].ID != "key-a" || len(x.Keys[0].Origins) != 3 {
		t.Errorf("keys: %+v", x.Keys)
	}
	if len(x.Replays) != 1 || x.Replays[0].Count != 2 || x.Replays[0].Origin.Host != "198.51.100.9" {
		t.Errorf("replays: %+v", x.Replays)
	}
	if len(x.Lockouts) != 1 || x.Lockouts[0].Origin.Host != "203.0.113.5" || x.Lockouts[0].Count != 1 {
		t.Errorf("lockouts: %+v", x.Lockouts)
	}
	var table, csv bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"allowed calls to step-up methods without step-up evidence: 1 (must be 0)",
		transfer + " allow subject \"alice\" token \"at-1\" from 192.0.2.7 (bank-app/2.1)",
		"2 (approval 1, totp 1)",
		"Shadow mode: calls a policy would have refused: 1",
		"lock-outs, by origin: 1",
	} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("the table lacks %q:\n%s", w, table.String())
		}
	}
	if err := rep.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv.String(), "exception,,allowed_without_step_up,,,1\n") || !strings.Contains(csv.String(), "exception,,lockouts,STEPUP_ATTEMPTS_EXCEEDED,203.0.113.5 (bank-app/2.1),1\n") {
		t.Errorf("csv:\n%s", csv.String())
	}
}
