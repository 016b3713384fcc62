package auditlog

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The decisions a report reads as calls (interceptor.Decision values, and
// the gateway's backend_error).
const (
	decisionAllow           = "allow"
	decisionStepUpPassed    = "step_up_passed"
	decisionShadowDeny      = "shadow_deny"
	decisionDeny            = "deny"
	decisionChallenge       = "challenge"
	decisionStepUpFailed    = "step_up_failed"
	decisionApprovalPending = "approval_pending"
	decisionBackendError    = "backend_error"
)

// ReplayReasons are the reasons a report counts as replays: a captured
// request, answer, code or assertion presented again.
var ReplayReasons = []string{"DPOP_REPLAYED", "STEPUP_CHALLENGE_REUSED", "STEPUP_TOTP_REUSED", "STEPUP_WEBAUTHN_COUNTER"}

// reasonLocked is the reason of a lock-out (with PERMISSION_DENIED: the
// subject made too many wrong answers).
const reasonLocked = "STEPUP_ATTEMPTS_EXCEEDED"

// ReportOptions select the records of a report.
type ReportOptions struct {
	// Since and Until bound the records' times: Since <= time < Until. A
	// zero value leaves that side open.
	Since, Until time.Time
}

// Report is what a trail shows for a period: per method, what was
// allowed and on what evidence, what was refused and why, what a policy in
// shadow mode would have refused; and the exceptions a reviewer looks for.
// docs/COMPLIANCE.md explains each figure.
type Report struct {
	Since string `json:"since,omitempty"` // RFC 3339, "" when open
	Until string `json:"until,omitempty"`
	// Records counts the records in the period; Chains the chains they
	// come from.
	Records int `json:"records"`
	Chains  int `json:"chains"`
	// Methods holds one entry per method called, sorted by name.
	Methods []MethodReport `json:"methods"`
	// Other counts the decisions that are not calls (the approver page's:
	// approver_sign_in, approval_shown, approval_approved,
	// approval_denied), by decision.
	Other map[string]int `json:"other_decisions,omitempty"`
	// Exceptions are what a reviewer looks at first.
	Exceptions Exceptions `json:"exceptions"`
}

// MethodReport is one method's calls in a report.
type MethodReport struct {
	Method string `json:"method"`
	// StepUpRequired: records of the period say the method's policy
	// requires step-up.
	StepUpRequired bool `json:"step_up_required"`
	Calls          int  `json:"calls"`
	// Allowed counts the calls that proceeded (allow, step_up_passed);
	// of them, StepUp those with a fresh step-up on the call, by factor,
	// Grant those a grant allowed, by the factor it was earned with, and
	// Token those the access token's acr satisfied.
	Allowed int            `json:"allowed"`
	StepUp  map[string]int `json:"step_up_by_factor,omitempty"`
	Grant   map[string]int `json:"grant_by_factor,omitempty"`
	Token   int            `json:"token_acr,omitempty"`
	// Refused counts the refusals by reason (deny, challenge,
	// step_up_failed, backend_error).
	Refused map[string]int `json:"refused_by_reason,omitempty"`
	// Pending counts the retries that waited for an out-of-band approval
	// (approval_pending): refused with UNAVAILABLE, to be retried, one per
	// retry while the user decides; not counted as refusals.
	Pending int `json:"approval_pending,omitempty"`
	// Shadow counts, by reason, the calls a policy in shadow mode let
	// through that it would have refused.
	Shadow map[string]int `json:"shadow_would_refuse,omitempty"`
}

// Exceptions are the findings of a report that need a look.
type Exceptions struct {
	// WithoutStepUp lists the allowed calls to methods whose policy
	// requires step-up that carry no step-up evidence (via answer, grant
	// or token). It must be empty: anything else is a Guard that did not
	// enforce its policy.
	WithoutStepUp []Call `json:"allowed_without_step_up"`
	// Tokens and Keys list the access tokens (by token id) and DPoP keys
	// (by thumbprint) seen from more than one origin.
	Tokens []Spread `json:"tokens_from_several_origins"`
	Keys   []Spread `json:"keys_from_several_origins"`
	// Replays and Lockouts count, per origin, the refusals for a replay
	// (ReplayReasons) and the lock-outs (STEPUP_ATTEMPTS_EXCEEDED with
	// PERMISSION_DENIED).
	Replays  []OriginCount `json:"replays"`
	Lockouts []OriginCount `json:"lockouts"`
}

// Origin is where a call came from, as far as the server can tell: the
// peer's host (without its port, which changes with every connection) and
// the user agent the client sent. Neither is authenticated: a proxy or NAT
// shares one host between clients, and a client names its own agent.
type Origin struct {
	Host      string `json:"host"`
	UserAgent string `json:"user_agent,omitempty"`
}

func (o Origin) String() string {
	if o.UserAgent == "" {
		return o.Host
	}
	return o.Host + " (" + o.UserAgent + ")"
}

func originOf(e *Entry) Origin {
	host := e.Peer
	if h, _, err := net.SplitHostPort(e.Peer); err == nil {
		host = h
	}
	return Origin{Host: host, UserAgent: e.UserAgent}
}

// Call names one record.
type Call struct {
	Time     string `json:"time"`
	Chain    string `json:"chain"`
	Seq      int64  `json:"seq"`
	Method   string `json:"method"`
	Decision string `json:"decision"`
	Subject  string `json:"subject,omitempty"`
	TokenID  string `json:"token_id,omitempty"`
	Origin   Origin `json:"origin"`
}

// Spread is a credential seen from several origins.
type Spread struct {
	ID       string      `json:"id"` // the token id or the key thumbprint
	Subjects []string    `json:"subjects"`
	Origins  []OriginUse `json:"origins"`
}

// OriginUse counts one origin's calls with a credential: those that
// proceeded (shadow refusals included) and those refused (approval waits
// are neither).
type OriginUse struct {
	Origin  Origin `json:"origin"`
	Allowed int    `json:"allowed"`
	Refused int    `json:"refused"`
	First   string `json:"first"`
	Last    string `json:"last"`
}

// OriginCount counts one origin's refusals of one reason.
type OriginCount struct {
	Origin   Origin   `json:"origin"`
	Reason   string   `json:"reason"`
	Count    int      `json:"count"`
	Subjects []string `json:"subjects,omitempty"`
}

// ReadRecords reads the records of the trail files at paths (a directory
// stands for its trail files), each once: a record read twice (the same
// chain and seq, as from overlapping copies) counts once. It checks
// nothing: Verify does. Lines that are not entries are skipped.
func ReadRecords(paths []string) ([]*Entry, error) {
	files, err := expand(paths)
	if err != nil {
		return nil, err
	}
	type key struct {
		chain string
		seq   int64
	}
	seen := map[key]bool{}
	var out []*Entry
	for _, path := range files {
		fc, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		for _, l := range fc.lines {
			if e := l.entry; e != nil && e.Kind == KindRecord && !seen[key{e.Chain, e.Seq}] {
				seen[key{e.Chain, e.Seq}] = true
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// NewReport reports the records of the period opts selects.
func NewReport(records []*Entry, opts ReportOptions) *Report {
	r := &Report{Other: map[string]int{}}
	if !opts.Since.IsZero() {
		r.Since = opts.Since.UTC().Format(time.RFC3339)
	}
	if !opts.Until.IsZero() {
		r.Until = opts.Until.UTC().Format(time.RFC3339)
	}
	methods := map[string]*MethodReport{}
	chains := map[string]bool{}
	tokens, keys := newSpreads(), newSpreads()
	replays, lockouts := map[[2]string]*OriginCount{}, map[[2]string]*OriginCount{}
	sorted := slices.Clone(records)
	slices.SortStableFunc(sorted, func(a, b *Entry) int { return cmp.Compare(a.Time, b.Time) })
	for _, e := range sorted {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || !opts.Since.IsZero() && t.Before(opts.Since) || !opts.Until.IsZero() && !t.Before(opts.Until) {
			continue
		}
		r.Records++
		chains[e.Chain] = true
		allowed, refused := false, false
		switch e.Decision {
		case decisionAllow, decisionStepUpPassed:
			allowed = true
		case decisionDeny, decisionChallenge, decisionStepUpFailed, decisionBackendError:
			refused = true
		case decisionShadowDeny, decisionApprovalPending:
		default:
			r.Other[e.Decision]++
			continue
		}
		m := methods[e.Method]
		if m == nil {
			m = &MethodReport{Method: e.Method, StepUp: map[string]int{}, Grant: map[string]int{}, Refused: map[string]int{}, Shadow: map[string]int{}}
			methods[e.Method] = m
		}
		m.Calls++
		m.StepUpRequired = m.StepUpRequired || e.StepUpRequired
		origin := originOf(e)
		switch {
		case allowed:
			m.Allowed++
			switch e.Via {
			case "answer":
				m.StepUp[e.Factor]++
			case "grant":
				m.Grant[e.Factor]++
			case "token":
				m.Token++
			default:
				if e.StepUpRequired {
					r.Exceptions.WithoutStepUp = append(r.Exceptions.WithoutStepUp, Call{Time: e.Time, Chain: e.Chain, Seq: e.Seq,
						Method: e.Method, Decision: e.Decision, Subject: e.Subject, TokenID: e.TokenID, Origin: origin})
				}
			}
		case refused:
			m.Refused[e.Reason]++
		case e.Decision == decisionApprovalPending:
			m.Pending++
		default:
			m.Shadow[e.Reason]++
		}
		proceeded := allowed || e.Decision == decisionShadowDeny
		if e.TokenID != "" {
			tokens.add(e.TokenID, e, origin, proceeded, refused)
		}
		if e.JKT != "" {
			keys.add(e.JKT, e, origin, proceeded, refused)
		}
		switch {
		case refused && slices.Contains(ReplayReasons, e.Reason):
			countOrigin(replays, origin, e)
		case refused && e.Reason == reasonLocked && e.Code == "PERMISSION_DENIED":
			countOrigin(lockouts, origin, e)
		}
	}
	r.Chains = len(chains)
	for _, name := range slices.Sorted(maps.Keys(methods)) {
		r.Methods = append(r.Methods, *methods[name])
	}
	r.Exceptions.Tokens, r.Exceptions.Keys = tokens.several(), keys.several()
	r.Exceptions.Replays, r.Exceptions.Lockouts = originCounts(replays), originCounts(lockouts)
	if r.Exceptions.WithoutStepUp == nil {
		r.Exceptions.WithoutStepUp = []Call{}
	}
	return r
}

// spreads collects the origins of credentials.
type spreads struct {
	byID map[string]*spreadState
}

type spreadState struct {
	subjects map[string]bool
	origins  map[Origin]*OriginUse
}

func newSpreads() *spreads { return &spreads{byID: map[string]*spreadState{}} }

func (s *spreads) add(id string, e *Entry, o Origin, proceeded, refused bool) {
	st := s.byID[id]
	if st == nil {
		st = &spreadState{subjects: map[string]bool{}, origins: map[Origin]*OriginUse{}}
		s.byID[id] = st
	}
	if e.Subject != "" {
		st.subjects[e.Subject] = true
	}
	u := st.origins[o]
	if u == nil {
		u = &OriginUse{Origin: o, First: e.Time}
		st.origins[o] = u
	}
	u.Last = e.Time
	switch {
	case proceeded:
		u.Allowed++
	case refused:
		u.Refused++
	}
}

// several returns the credentials seen from more than one origin, sorted.
func (s *spreads) several() []Spread {
	out := []Spread{}
	for _, id := range slices.Sorted(maps.Keys(s.byID)) {
		st := s.byID[id]
		if len(st.origins) < 2 {
			continue
		}
		sp := Spread{ID: id, Subjects: slices.Sorted(maps.Keys(st.subjects))}
		for _, u := range st.origins {
			sp.Origins = append(sp.Origins, *u)
		}
		slices.SortFunc(sp.Origins, func(a, b OriginUse) int { return cmp.Compare(a.First, b.First) })
		out = append(out, sp)
	}
	return out
}

func countOrigin(m map[[2]string]*OriginCount, o Origin, e *Entry) {
	k := [2]string{o.String(), e.Reason}
	c := m[k]
	if c == nil {
		c = &OriginCount{Origin: o, Reason: e.Reason}
		m[k] = c
	}
	c.Count++
	if e.Subject != "" && !slices.Contains(c.Subjects, e.Subject) {
		c.Subjects = append(c.Subjects, e.Subject)
		slices.Sort(c.Subjects)
	}
}

func originCounts(m map[[2]string]*OriginCount) []OriginCount {
	out := []OriginCount{}
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		out = append(out, *m[k])
	}
	return out
}

// WriteTable writes the report as text tables for a reader.
func (r *Report) WriteTable(w io.Writer) error {
	b := &strings.Builder{}
	period := "all records"
	switch {
	case r.Since != "" && r.Until != "":
		period = r.Since + " to " + r.Until
	case r.Since != "":
		period = "from " + r.Since
	case r.Until != "":
		period = "until " + r.Until
	}
	fmt.Fprintf(b, "Period: %s: %s from %s\n\n", period, count(int64(r.Records), "record", "records"), count(int64(r.Chains), "chain", "chains"))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tSTEP-UP\tCALLS\tALLOWED\tFRESH STEP-UP\tVIA GRANT\tVIA TOKEN\tREFUSED\tSHADOW\tAPPROVAL WAITS")
	for _, m := range r.Methods {
		req := "no"
		if m.StepUpRequired {
			req = "required"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", m.Method, req, m.Calls, m.Allowed,
			byKey(m.StepUp), byKey(m.Grant), m.Token, sum(m.Refused), sum(m.Shadow), m.Pending)
	}
	tw.Flush()
	var reasons [][3]string
	for _, m := range r.Methods {
		for _, k := range slices.Sorted(maps.Keys(m.Refused)) {
			reasons = append(reasons, [3]string{m.Method, k, strconv.Itoa(m.Refused[k])})
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(b, "\nRefusals by reason\n")
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		for _, x := range reasons {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", x[0], x[1], x[2])
		}
		tw.Flush()
	}
	var shadow [][3]string
	for _, m := range r.Methods {
		for _, k := range slices.Sorted(maps.Keys(m.Shadow)) {
			shadow = append(shadow, [3]string{m.Method, k, strconv.Itoa(m.Shadow[k])})
		}
	}
	fmt.Fprintf(b, "\nShadow mode: calls a policy would have refused: %d\n", len(shadow))
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, x := range shadow {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", x[0], x[1], x[2])
	}
	tw.Flush()
	if len(r.Other) > 0 {
		fmt.Fprintf(b, "\nApprover page: %s\n", byKey(r.Other))
	}
	x := r.Exceptions
	fmt.Fprintf(b, "\nExceptions\n")
	fmt.Fprintf(b, "  allowed calls to step-up methods without step-up evidence: %d (must be 0)\n", len(x.WithoutStepUp))
	for _, c := range x.WithoutStepUp {
		fmt.Fprintf(b, "    %s %s %s subject %q token %q from %s (chain %s seq %d)\n", c.Time, c.Method, c.Decision, c.Subject, c.TokenID, c.Origin, c.Chain, c.Seq)
	}
	for _, s := range []struct {
		what string
		list []Spread
	}{{"access tokens used from more than one origin", x.Tokens}, {"DPoP keys used from more than one origin", x.Keys}} {
		fmt.Fprintf(b, "  %s: %d\n", s.what, len(s.list))
		for _, sp := range s.list {
			fmt.Fprintf(b, "    %s (subject %s)\n", sp.ID, strings.Join(sp.Subjects, ", "))
			for _, u := range sp.Origins {
				fmt.Fprintf(b, "      %s: %d allowed, %d refused, %s to %s\n", u.Origin, u.Allowed, u.Refused, u.First, u.Last)
			}
		}
	}
	for _, s := range []struct {
		what string
		list []OriginCount
	}{{"replays refused, by origin", x.Replays}, {"lock-outs, by origin", x.Lockouts}} {
		fmt.Fprintf(b, "  %s: %d\n", s.what, total(s.list))
		for _, c := range s.list {
			fmt.Fprintf(b, "    %s: %s %d (subject %s)\n", c.Origin, c.Reason, c.Count, strings.Join(c.Subjects, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func byKey(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	n := 0
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := k
		if name == "" {
			name = "?"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
		n += m[k]
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func total(l []OriginCount) int {
	n := 0
	for _, c := range l {
		n += c.Count
	}
	return n
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"section", "method", "measure", "key", "origin", "count"}

// WriteCSV writes the report as rows of CSVHeader: one row per figure.
// section is "method" (measure calls, allowed, step_up (key: the factor),
// grant (key: the factor), token, refused (key: the reason), shadow (key:
// the reason), approval_pending), "other" (key: the decision) or "exception" (measure
// allowed_without_step_up (key: chain:seq), token_origins or key_origins
// (key: the id), replays or lockouts (key: the reason)).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	row := func(f ...string) { _ = cw.Write(f) }
	row(CSVHeader...)
	n := strconv.Itoa
	for _, m := range r.Methods {
		row("method", m.Method, "calls", "", "", n(m.Calls))
		row("method", m.Method, "allowed", "", "", n(m.Allowed))
		for _, s := range []struct {
			measure string
			m       map[string]int
		}{{"step_up", m.StepUp}, {"grant", m.Grant}, {"refused", m.Refused}, {"shadow", m.Shadow}} {
			for _, k := range slices.Sorted(maps.Keys(s.m)) {
				row("method", m.Method, s.measure, k, "", n(s.m[k]))
			}
		}
		row("method", m.Method, "token", "", "", n(m.Token))
		row("method", m.Method, "approval_pending", "", "", n(m.Pending))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Other)) {
		row("other", "", "decision", k, "", n(r.Other[k]))
	}
	x := r.Exceptions
	row("exception", "", "allowed_without_step_up", "", "", n(len(x.WithoutStepUp)))
	for _, c := range x.WithoutStepUp {
		row("exception", c.Method, "allowed_without_step_up", fmt.Sprintf("%s:%d", c.Chain, c.Seq), c.Origin.String(), "1")
	}
	for _, s := range []struct {
		measure string
		list    []Spread
	}{{"token_origins", x.Tokens}, {"key_origins", x.Keys}} {
		for _, sp := range s.list {
			for _, u := range sp.Origins {
				row("exception", "", s.measure, sp.ID, u.Origin.String(), n(u.Allowed+u.Refused))
			}
		}
	}
	for _, s := range []struct {
		measure string
		list    []OriginCount
	}{{"replays", x.Replays}, {"lockouts", x.Lockouts}} {
		for _, c := range s.list {
			row("exception", "", s.measure, c.Reason, c.Origin.String(), n(c.Count))
		}
	}
	cw.Flush()
	return cw.Error()
}
