package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/emptypb" // the Empty of the evil API

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// hostile is what a value hides from a terminal: clear the screen and
// move home (ESC [2J ESC [H), the line up and erased (ESC [1A ESC [2K), a
// window title set and BEL, a carriage return, the C1 CSI (U+009B), a
// right-to-left override and a line feed that would start a line of its own.
const hostile = "\x1b[2J\x1b[H\x1b[1A\x1b[2K\x1b]0;owned\x07\r\u009b2J\u202e\nno problem found."

// terminalSafe reports the first byte or rune of out a terminal would act
// on, other than the line feeds between lines.
func terminalSafe(out string) (string, bool) {
	if !utf8.ValidString(out) {
		return "invalid UTF-8", false
	}
	for _, r := range out {
		if r != '\n' && !unicode.IsGraphic(r) {
			return fmt.Sprintf("%U", r), false
		}
	}
	return "", true
}

// TestInspectEscapesHostileValues: a value pasted into stepup inspect (a
// refusal trailer from a server, a token from a log) carries terminal
// control sequences in every field inspect prints: a detail's type URL,
// ErrorInfo reason, domain and metadata, a challenge's method and summary,
// a token's cnf.jkt, a claim's name and value, a JWS header. The output
// holds no control byte but the line feeds between lines, and its last
// line is still the verdict. Before, each was printed raw: ESC and BEL
// sequences cleared the screen, set the window title, or moved up and
// erased the "N problem(s)" line; a line feed in a value printed a line of
// the attacker's.
func TestInspectEscapesHostileValues(t *testing.T) {
	info, _ := anypb.New(&errdetails.ErrorInfo{Reason: "INVALID_TOKEN" + hostile, Domain: interceptor.ErrorDomain + hostile,
		Metadata: map[string]string{"proof_sha256" + hostile: "x" + hostile}})
	ch, _ := anypb.New(&stepupv1.StepUpChallenge{
		Method: "/bank.v1.BankService/Transfer" + hostile, SummaryText: "approve" + hostile, AcrValues: []string{"acr" + hostile},
		Challenge: "eyJhbGciOiJIUzI1NiIsInR5cCI6InN0ZXB1cC1jaGFsbGVuZ2Urand0In0." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1,"mth":"/x.Y/Z`+jsonHostile()+`"}`)) + ".c2ln",
	})
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/evil" + hostile, Value: []byte{1}}
	st, err := proto.Marshal(&spb.Status{Code: int32(codes.Unauthenticated), Message: "refused" + hostile, Details: []*anypb.Any{info, ch, unknown}})
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Join([]string{
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"at+jwt","kid":"k` + jsonHostile() + `"}`)),
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":1,"cnf":{"jkt":"` + jsonHostile() + `"},"x` + jsonHostile() + `":1}`)),
		"c2ln"}, ".")
	for _, c := range []struct{ name, value string }{
		{"refusal trailer", base64.StdEncoding.EncodeToString(st)},
		{"access token", token},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _, code := stepup(t, t.TempDir(), "", "inspect", c.value)
			if what, ok := terminalSafe(out); !ok {
				t.Errorf("the output holds %s:\n%q", what, out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if last := lines[len(lines)-1]; code != 1 || !strings.HasSuffix(last, "problem(s): a server would refuse this.") {
				t.Errorf("exit %d, last line %q, want the verdict", code, last)
			}
			for _, l := range lines {
				if strings.HasPrefix(strings.TrimSpace(l), "no problem found.") {
					t.Errorf("a value printed a line of its own: %q", l)
				}
			}
			if !strings.Contains(out, `\u001b[2J`) {
				t.Errorf("the escape sequence is not shown escaped:\n%s", out)
			}
		})
	}
}

// jsonHostile is hostile as the content of a JSON string.
func jsonHostile() string {
	b, _ := json.Marshal(hostile)
	return string(b[1 : len(b)-1])
}

// TestPoliciesEscapesHostileDescriptors: a descriptor set from elsewhere
// (a vendor's API) names scopes and acr values with terminal control
// sequences; stepup policies prints them escaped, in the table and in JSON
// (which still reads back to the same strings).
func TestPoliciesEscapesHostileDescriptors(t *testing.T) {
	opts := &descriptorpb.MethodOptions{}
	proto.SetExtension(opts, stepupv1.E_Policy, &stepupv1.Policy{
		Scopes: []string{"read"},
		StepUp: &stepupv1.StepUp{AcrValues: []string{"acr" + hostile}},
	})
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("evil/v1/evil.proto"), Package: proto.String("evil.v1"), Syntax: proto.String("proto3"),
		Dependency: []string{"stepup/v1/options.proto", "google/protobuf/empty.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Evil"), Method: []*descriptorpb.MethodDescriptorProto{{
			Name: proto.String("Do"), InputType: proto.String(".google.protobuf.Empty"), OutputType: proto.String(".google.protobuf.Empty"), Options: opts,
		}}}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gateway.DescriptorSet(fd)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "evil.binpb"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	table, errOut, code := stepup(t, dir, "", "policies", "--descriptors", "evil.binpb")
	if code != 0 || !strings.Contains(table, "/evil.v1.Evil/Do") {
		t.Fatalf("exit %d\n%s%s", code, table, errOut)
	}
	js, _, code := stepup(t, dir, "", "policies", "--descriptors", "evil.binpb", "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	for name, out := range map[string]string{"table": table, "json": js} {
		if what, ok := terminalSafe(out); !ok {
			t.Errorf("%s: the output holds %s:\n%q", name, what, out)
		}
	}
	var rows []policyRow
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		t.Fatalf("the escaped JSON does not read: %v", err)
	}
	if len(rows) != 1 || len(rows[0].ACRValues) != 1 || rows[0].ACRValues[0] != "acr"+hostile {
		t.Errorf("the JSON reads back as %+v", rows)
	}
}

// TestAuditEscapesHostileTrail: what stepup audit verify and report print
// comes from the trail's files, written from what callers sent and, for a
// tampered trail, by whoever tampered with it. An attacker replays a
// captured call with a user agent carrying the C1 CSI and a right-to-left
// override (bytes that HTTP/2 lets through in a header), and a record of
// the trail is rewritten to name a chain id with escape sequences and a
// line feed followed by a forged verdict. Every format of both commands
// holds no control byte but its own line feeds, the forged verdict does
// not start a line, and the JSON reads back to the same strings. Before,
// both were printed raw.
func TestAuditEscapesHostileTrail(t *testing.T) {
	const agent = "mallory\u009b2J\u202e/0.1"
	dir := t.TempDir()
	files := guardTrailAgent(t, dir, true, agent)

	forged := "verified: 3 files, every record covered by a valid checkpoint"
	chain := "\x1b[2J\x1b]0;owned\x07\u009b1A\n" + forged
	js, _ := json.Marshal(chain)
	editLines(t, files[1], func(l []string) []string {
		i := strings.Index(l[5], `"chain":"`) + len(`"chain":"`)
		j := i + strings.Index(l[5][i:], `"`)
		l[5] = l[5][:i] + string(js[1:len(js)-1]) + l[5][j:]
		return l
	})

	check := func(name, out string) {
		t.Helper()
		if what, ok := terminalSafe(out); !ok {
			t.Errorf("%s: the output holds %s:\n%q", name, what, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), forged) {
				t.Errorf("%s: a value printed a line of its own: %q", name, l)
			}
		}
	}
	out, errOut, code := stepup(t, dir, "", "audit", "verify", "trail", "--keys", "audit.pub.jwk")
	if code < 3 || !strings.Contains(out, `\u001b[2J`) {
		t.Errorf("verify: exit %d, want a problem, and the chain id shown escaped:\n%s%s", code, out, errOut)
	}
	check("verify", out)
	js2, _, _ := stepup(t, dir, "", "audit", "verify", "--json", "--keys", "audit.pub.jwk", "trail")
	check("verify --json", js2)
	var res struct {
		Problems []struct {
			Message string `json:"message"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(js2), &res); err != nil {
		t.Fatalf("verify --json: the escaped JSON does not read: %v", err)
	}
	if found := slices.ContainsFunc(res.Problems, func(p struct {
		Message string `json:"message"`
	}) bool {
		return strings.Contains(p.Message, chain)
	}); !found {
		t.Errorf("verify --json: no problem message names the chain id as written: %+v", res.Problems)
	}

	for _, format := range []string{"table", "csv", "json"} {
		out, errOut, code := stepup(t, dir, "", "audit", "report", "--format", format, "trail")
		if code != 0 || !strings.Contains(out, `mallory\u009b2J\u202e/0.1`) {
			t.Errorf("report --format %s: exit %d, want the agent shown escaped:\n%s%s", format, code, out, errOut)
		}
		check("report --format "+format, out)
		if format == "json" {
			var rep auditlog.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("report --format json: the escaped JSON does not read: %v", err)
			}
			if len(rep.Exceptions.Replays) == 0 || !strings.HasPrefix(rep.Exceptions.Replays[0].Origin.UserAgent, agent+" ") {
				t.Errorf("report --format json reads back as %+v", rep.Exceptions.Replays)
			}
		}
	}
}
