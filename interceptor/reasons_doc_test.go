package interceptor_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// The packages whose `type Reason string` constants docs/AUDIT.md lists,
// by directory relative to this package.
var reasonsDocPackages = map[string]string{
	"interceptor": ".",
	"dpop":        "../dpop",
	"challenge":   "../challenge",
	"approval":    "../approval",
	"factor":      "../challenge/factor",
}

const reasonsDocPath = "../docs/AUDIT.md"

// TestReasonsDoc checks the reason table of docs/AUDIT.md against the code:
// it names exactly the Reason constants declared in the interceptor, dpop and
// challenge packages, each with the packages that declare it, valid
// decisions, and the gRPC codes and wire reasons the Guard actually sends.
func TestReasonsDoc(t *testing.T) {
	declared := reasonsDocDeclared(t)
	rows := reasonsDocTable(t)

	documented := map[string]bool{}
	for _, r := range rows {
		if documented[r.reason] {
			t.Errorf("docs/AUDIT.md line %d: %s is listed twice", r.line, r.reason)
		}
		documented[r.reason] = true
	}
	for _, v := range reasonsDocSortedKeys(declared) {
		if !documented[v] {
			t.Errorf("reason %s (declared in %s) is missing from the reason table of docs/AUDIT.md", v, strings.Join(declared[v], ", "))
		}
	}
	for _, r := range rows {
		if _, ok := declared[r.reason]; !ok {
			t.Errorf("docs/AUDIT.md line %d: %s is not a Reason constant of interceptor, dpop or challenge", r.line, r.reason)
		}
	}

	decisions := map[string]bool{}
	for _, d := range []interceptor.Decision{
		interceptor.DecisionAllow, interceptor.DecisionDeny, interceptor.DecisionChallenge,
		interceptor.DecisionStepUpPassed, interceptor.DecisionStepUpFailed, interceptor.DecisionShadowDeny,
		interceptor.DecisionApprovalPending, interceptor.DecisionApproverSignIn, interceptor.DecisionApproverSignOut, interceptor.DecisionApprovalShown,
		interceptor.DecisionApprovalApproved, interceptor.DecisionApprovalDenied,
	} {
		decisions[string(d)] = true
	}
	proceeds := map[string]bool{string(interceptor.ReasonAllowed): true, string(interceptor.ReasonNoAuthentication): true}
	// The decisions of a step the approver page took (reason ALLOWED).
	pageSteps := map[string]bool{
		string(interceptor.DecisionApproverSignIn): true, string(interceptor.DecisionApproverSignOut): true, string(interceptor.DecisionApprovalShown): true,
		string(interceptor.DecisionApprovalApproved): true, string(interceptor.DecisionApprovalDenied): true,
	}
	// Reasons only the approver page gives (package approval): the Guard
	// never sends them, and their row gives the HTTP status in the wire
	// column.
	pageOnly := map[string]bool{
		string(challenge.ReasonApprovalUnknown): true, string(challenge.ReasonApprovalDecided): true,
		string(challenge.ReasonSignInInvalid): true, string(challenge.ReasonApproverSessionInvalid): true,
		string(challenge.ReasonApproverSessionEnded): true, string(challenge.ReasonApproverSessionRevoked): true,
	}
	// Refusals of an approval answer that never carry a new challenge.
	noNewChallenge := map[string]bool{
		string(challenge.ReasonApprovalPending): true, string(challenge.ReasonApprovalDenied): true,
		string(challenge.ReasonApprovalExpired): true, string(challenge.ReasonApprovalsLimit): true,
		// Decided on the request, before the step-up check.
		string(challenge.ReasonRequestUnknownField): true, string(challenge.ReasonRequestInvalid): true,
	}
	sent := reasonsDocSent(t)

	for _, r := range rows {
		decl, ok := declared[r.reason]
		if !ok {
			continue
		}
		if !slices.Equal(r.sources, decl) {
			t.Errorf("docs/AUDIT.md line %d: %s: source %v, but it is declared in %v", r.line, r.reason, r.sources, decl)
		}
		if len(r.decisions) == 0 {
			t.Errorf("docs/AUDIT.md line %d: %s: no decision listed", r.line, r.reason)
		}
		for _, d := range r.decisions {
			if !decisions[d] {
				t.Errorf("docs/AUDIT.md line %d: %s: %q is not a Decision", r.line, r.reason, d)
			}
		}

		if pageOnly[r.reason] || slices.Equal(decl, []string{"approval"}) {
			for _, o := range r.outcomes {
				if !regexp.MustCompile(`^(PermissionDenied|Unauthenticated)/HTTP [1-5][0-9][0-9]$`).MatchString(o) {
					t.Errorf("docs/AUDIT.md line %d: %s is a reason of the approver page: want the event's code and `HTTP <status>`, got %s", r.line, r.reason, o)
				}
			}
			continue
		}
		// What the code sends for this reason.
		var want []string
		switch {
		case proceeds[r.reason]:
			want = []string{reasonsDocOutcome(codes.OK, "")}
		default:
			code, wire := sent(r.reason)
			want = []string{reasonsDocOutcome(code, wire)}
			// A step-up refusal that carries a new challenge is always
			// UNAUTHENTICATED / INSUFFICIENT_USER_AUTHENTICATION, whatever
			// the challenge package's reason (interceptor.stepUpDenial).
			// Store failures never carry one: Check returns an error.
			if slices.Contains(decl, "challenge") && r.reason != string(challenge.ReasonStoreUnavailable) && !noNewChallenge[r.reason] {
				if o := reasonsDocOutcome(codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication); !slices.Contains(want, o) {
					want = append(want, o)
				}
			}
		}
		sort.Strings(want)
		got := slices.Clone(r.outcomes)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("docs/AUDIT.md line %d: %s: documented as %v, the code sends %v", r.line, r.reason, got, want)
		}
		if proceeds[r.reason] {
			for _, d := range r.decisions {
				if d != string(interceptor.DecisionAllow) && d != string(interceptor.DecisionStepUpPassed) && !(r.reason == string(interceptor.ReasonAllowed) && pageSteps[d]) {
					t.Errorf("docs/AUDIT.md line %d: %s lets the call proceed, but lists decision %q", r.line, r.reason, d)
				}
			}
		}
	}
}

func reasonsDocOutcome(c codes.Code, wire string) string {
	if wire == "" {
		return c.String()
	}
	return c.String() + "/" + wire
}

func reasonsDocSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// reasonsDocDeclared parses the Go source of the three packages and returns
// every value of a constant of their Reason type, with the packages that
// declare it (sorted).
func reasonsDocDeclared(t *testing.T) map[string][]string {
	t.Helper()
	type pkgConsts struct {
		exprs   map[string]ast.Expr // every constant's value expression
		reasons []string            // the names of Reason-typed constants
	}
	pkgs := map[string]*pkgConsts{}
	fset := token.NewFileSet()
	for name, dir := range reasonsDocPackages {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		pc := &pkgConsts{exprs: map[string]ast.Expr{}}
		pkgs[name] = pc
		for _, e := range entries {
			fn := e.Name()
			if e.IsDir() || !strings.HasSuffix(fn, ".go") || strings.HasSuffix(fn, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, fn), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			if f.Name.Name != name {
				continue
			}
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				var typ ast.Expr
				var vals []ast.Expr
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					if vs.Type != nil || len(vs.Values) > 0 {
						// A spec with neither repeats the previous one's.
						typ, vals = vs.Type, vs.Values
					}
					for i, id := range vs.Names {
						if id.Name == "_" {
							continue
						}
						var v ast.Expr
						if i < len(vals) {
							v = vals[i]
						}
						pc.exprs[id.Name] = v
						if reasonsDocIsReasonType(typ) || (typ == nil && reasonsDocIsConversion(v)) {
							if len(vs.Values) == 0 {
								t.Fatalf("%s: Reason constant %s has an implicit value; this test cannot evaluate it", fset.Position(id.Pos()), id.Name)
							}
							pc.reasons = append(pc.reasons, id.Name)
						}
					}
				}
			}
		}
		if len(pc.reasons) == 0 {
			t.Fatalf("no Reason constant found in package %s (%s)", name, dir)
		}
	}

	// eval returns the string value of a constant expression: string
	// literals, conversions, concatenations and references to constants of
	// these packages.
	var eval func(pkg string, e ast.Expr, depth int) (string, error)
	eval = func(pkg string, e ast.Expr, depth int) (string, error) {
		if depth > 32 {
			return "", fmt.Errorf("constant reference cycle")
		}
		switch x := e.(type) {
		case *ast.BasicLit:
			if x.Kind == token.STRING {
				return strconv.Unquote(x.Value)
			}
		case *ast.ParenExpr:
			return eval(pkg, x.X, depth+1)
		case *ast.CallExpr: // a conversion: Reason("X"), Reason(dpop.ReasonY)
			if len(x.Args) == 1 {
				return eval(pkg, x.Args[0], depth+1)
			}
		case *ast.BinaryExpr:
			if x.Op == token.ADD {
				a, err := eval(pkg, x.X, depth+1)
				if err != nil {
					return "", err
				}
				b, err := eval(pkg, x.Y, depth+1)
				return a + b, err
			}
		case *ast.Ident:
			if v, ok := pkgs[pkg].exprs[x.Name]; ok && v != nil {
				return eval(pkg, v, depth+1)
			}
		case *ast.SelectorExpr:
			if p, ok := x.X.(*ast.Ident); ok {
				if other, ok := pkgs[p.Name]; ok {
					if v, ok := other.exprs[x.Sel.Name]; ok && v != nil {
						return eval(p.Name, v, depth+1)
					}
				}
			}
		}
		return "", fmt.Errorf("cannot evaluate %T", e)
	}

	declared := map[string][]string{}
	for _, pkg := range reasonsDocSortedKeys(pkgs) {
		for _, name := range pkgs[pkg].reasons {
			v, err := eval(pkg, pkgs[pkg].exprs[name], 0)
			if err != nil {
				t.Fatalf("%s.%s: %v", pkg, name, err)
			}
			if !slices.Contains(declared[v], pkg) {
				declared[v] = append(declared[v], pkg)
			}
		}
	}
	return declared
}

func reasonsDocIsReasonType(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "Reason"
}

func reasonsDocIsConversion(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	return ok && len(c.Args) == 1 && reasonsDocIsReasonType(c.Fun)
}

// reasonsDocRow is one row of the reason table.
type reasonsDocRow struct {
	line      int
	reason    string
	sources   []string // sorted
	decisions []string
	outcomes  []string // "Code/WIRE", or "OK" for a call that proceeds
}

var reasonsDocBacktick = regexp.MustCompile("`([^`]*)`")

func reasonsDocBackticked(cell string) []string {
	var out []string
	for _, m := range reasonsDocBacktick.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// reasonsDocTable finds the one table of docs/AUDIT.md whose header names
// the columns reason, source, decisions, gRPC code and wire reason, and
// parses its rows.
func reasonsDocTable(t *testing.T) []reasonsDocRow {
	t.Helper()
	data, err := os.ReadFile(reasonsDocPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	cells := func(line string) []string {
		line = strings.TrimSpace(line)
		line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
		parts := strings.Split(line, "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	wantCols := []string{"reason", "source", "decisions", "grpc code", "wire reason"}
	var rows []reasonsDocRow
	tables := 0
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(strings.TrimSpace(lines[i]), "|") {
			continue
		}
		header := cells(lines[i])
		col := map[string]int{}
		for j, h := range header {
			col[strings.ToLower(h)] = j
		}
		isReasonTable := true
		for _, c := range wantCols {
			if _, ok := col[c]; !ok {
				isReasonTable = false
			}
		}
		// Skip this table (header, separator, rows) unless it is the one.
		j := i + 1
		for j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|") {
			j++
		}
		if !isReasonTable {
			i = j - 1
			continue
		}
		tables++
		codeNames := map[string]codes.Code{}
		for c := codes.OK; c <= codes.Unauthenticated; c++ {
			codeNames[reasonsDocSnakeUpper(c.String())] = c
		}
		for k := i + 2; k < j; k++ {
			c := cells(lines[k])
			if len(c) != len(header) {
				t.Fatalf("docs/AUDIT.md line %d: %d cells, the header has %d (a | inside a cell?)", k+1, len(c), len(header))
			}
			row := reasonsDocRow{line: k + 1}
			rs := reasonsDocBackticked(c[col["reason"]])
			if len(rs) != 1 {
				t.Fatalf("docs/AUDIT.md line %d: the reason cell must hold one `REASON`, got %q", k+1, c[col["reason"]])
			}
			row.reason = rs[0]
			row.sources = reasonsDocBackticked(c[col["source"]])
			sort.Strings(row.sources)
			row.decisions = reasonsDocBackticked(c[col["decisions"]])
			codesIn := reasonsDocBackticked(c[col["grpc code"]])
			wires := reasonsDocBackticked(c[col["wire reason"]])
			switch {
			case len(codesIn) == 1 && codesIn[0] == "OK" && len(wires) == 0:
				row.outcomes = []string{reasonsDocOutcome(codes.OK, "")}
			case len(codesIn) > 0 && len(codesIn) == len(wires):
				for n := range codesIn {
					code, ok := codeNames[codesIn[n]]
					if !ok {
						t.Fatalf("docs/AUDIT.md line %d: %q is not a gRPC code name (UNAUTHENTICATED, PERMISSION_DENIED, ...)", k+1, codesIn[n])
					}
					row.outcomes = append(row.outcomes, reasonsDocOutcome(code, wires[n]))
				}
			default:
				t.Fatalf("docs/AUDIT.md line %d: %d gRPC codes and %d wire reasons; list them in pairs (or `OK` and no wire reason)", k+1, len(codesIn), len(wires))
			}
			rows = append(rows, row)
		}
		i = j - 1
	}
	if tables != 1 {
		t.Fatalf("docs/AUDIT.md: want exactly one table with the columns %v, found %d", wantCols, tables)
	}
	if len(rows) == 0 {
		t.Fatal("docs/AUDIT.md: the reason table has no rows")
	}
	return rows
}

// reasonsDocSnakeUpper turns a codes.Code name ("PermissionDenied") into the canonical
// upper snake case of the gRPC documentation ("PERMISSION_DENIED").
func reasonsDocSnakeUpper(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && s[i] >= 'A' && s[i] <= 'Z' && s[i-1] >= 'a' && s[i-1] <= 'z' {
			b.WriteByte('_')
		}
		b.WriteByte(s[i])
	}
	return strings.ToUpper(b.String())
}

// reasonsDocSent returns what the Guard sends to a client for a refusal with
// a given reason: its gRPC code and ErrorInfo reason. It drives a real Guard
// whose token verifier refuses every token with the reason the token names,
// and checks that the audit event carries that reason unchanged.
func reasonsDocSent(t *testing.T) func(reason string) (codes.Code, string) {
	t.Helper()
	var last *interceptor.Event
	g, err := interceptor.New(
		interceptor.WithFiles(new(protoregistry.Files)),
		interceptor.WithTokenVerifier(interceptor.TokenVerifierFunc(func(_ context.Context, tok string) (*interceptor.Token, error) {
			return nil, &interceptor.TokenError{Reason: interceptor.Reason(tok)}
		})),
		interceptor.WithAuditSink(interceptor.AuditFunc(func(_ context.Context, e *interceptor.Event) {
			ev := *e
			last = &ev
		})),
	)
	if err != nil {
		t.Fatal(err)
	}
	unary := g.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/stepup.docs.v1.Probe/Call"}
	return func(reason string) (codes.Code, string) {
		t.Helper()
		last = nil
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "DPoP "+reason))
		_, err := unary(ctx, nil, info, func(context.Context, any) (any, error) {
			t.Errorf("%s: the handler ran", reason)
			return nil, nil
		})
		if err == nil {
			t.Fatalf("%s: the Guard let the call through", reason)
		}
		code := status.Code(err)
		if last == nil || string(last.Reason) != reason || last.Code != code {
			t.Fatalf("%s: audit event %+v, want reason %s and code %s", reason, last, reason, code)
		}
		assertHint(t, err, interceptor.Reason(reason))
		return code, interceptor.ReasonFromError(err)
	}
}

const hintsDocPath = "../docs/PROTOCOL.md"

// hintDoc is the table of docs/PROTOCOL.md §7.4.
type hintDoc struct {
	byReason map[interceptor.Reason]interceptor.Hint // the hint of each audit reason listed
	byCode   map[string]interceptor.Hint
}

// documentedHints parses the table of docs/PROTOCOL.md §7.4.
var documentedHints = sync.OnceValues(func() (*hintDoc, error) {
	doc, err := os.ReadFile(hintsDocPath)
	if err != nil {
		return nil, err
	}
	_, section, ok := strings.Cut(string(doc), "\n### 7.4 Hints\n")
	if !ok {
		return nil, fmt.Errorf("%s has no section 7.4 Hints", hintsDocPath)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| `([a-z_]+)` \\| ([^|]+) \\| (.+) \\|$")
	reasonName := regexp.MustCompile("`([A-Z_]+)`")
	out := map[interceptor.Reason]interceptor.Hint{}
	codes := map[string]interceptor.Hint{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		h := interceptor.Hint{Code: m[1], FixSide: m[2], Fix: m[4]}
		if _, dup := codes[h.Code]; dup {
			return nil, fmt.Errorf("%s §7.4: hint %s listed twice", hintsDocPath, h.Code)
		}
		codes[h.Code] = h
		for _, rm := range reasonName.FindAllStringSubmatch(m[3], -1) {
			r := rm[1]
			if _, dup := out[interceptor.Reason(r)]; dup {
				return nil, fmt.Errorf("%s §7.4: reason %s under two hints", hintsDocPath, r)
			}
			out[interceptor.Reason(r)] = h
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s §7.4: no table rows", hintsDocPath)
	}
	return &hintDoc{byReason: out, byCode: codes}, nil
})

// hintForbidden are configured values of this package's tests that no
// refusal may show a client: the issuer, the audience, the authority and
// relying party, the TOTP secret.
var hintForbidden = []string{testIssuer, testAudience, "api.example", testTOTP}

// assertHint checks what a refusal tells the client beyond its code: the
// hint of docs/PROTOCOL.md §7.4 for the audit reason, in the ErrorInfo
// metadata and at the end of the message, nothing else in the metadata but
// proof_sha256 and request_field, and none of the configured values.
func assertHint(t testing.TB, err error, reason interceptor.Reason) {
	t.Helper()
	doc, derr := documentedHints()
	if derr != nil {
		t.Fatal(derr)
	}
	want, ok := doc.byReason[reason]
	if !ok {
		t.Errorf("reason %s has no hint in %s §7.4", reason, hintsDocPath)
		return
	}
	got, ok := interceptor.HintFromError(err)
	if !ok || got != want {
		t.Errorf("%s: hint %+v, want %+v", reason, got, want)
	}
	st, _ := status.FromError(err)
	if suffix := " (hint " + want.Code + "; fix: " + want.FixSide + "): " + want.Fix; !strings.HasPrefix(st.Message(), "stepup: ") || !strings.HasSuffix(st.Message(), suffix) {
		t.Errorf("%s: message %q, want a generic text and %q", reason, st.Message(), suffix)
	}
	if strings.Contains(st.Message(), string(reason)) {
		t.Errorf("the client-facing message %q reveals the precise reason", st.Message())
	}
	told := []string{st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		for k, v := range info.GetMetadata() {
			switch k {
			case interceptor.ErrorInfoHint, interceptor.ErrorInfoFixSide, interceptor.ErrorInfoFix,
				interceptor.ErrorInfoProofHash, interceptor.ErrorInfoRequestField:
			default:
				t.Errorf("%s: ErrorInfo metadata %q is not documented", reason, k)
			}
			told = append(told, v)
		}
	}
	for _, v := range told {
		for _, secret := range hintForbidden {
			if strings.Contains(v, secret) {
				t.Errorf("%s: the client is told %q, which holds the configured %q", reason, v, secret)
			}
		}
	}
}
