package bank_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	protocolPath = "../../docs/PROTOCOL.md"
	auditDocPath = "../../docs/AUDIT.md"
)

// TestProtocolWorkedExample checks §12 of docs/PROTOCOL.md against
// docs/examples/exchange.txt, which TestWorkedExample checks against a
// run: every line of §12's code blocks that shows a value — a header
// field, a JSON member, a token — and every random-looking value quoted in
// its prose must be in the transcript. A value shortened with … matches
// the transcript's value that begins with the text before the … and ends
// with the text after it. JSON is compared member by member, whatever its
// layout.
func TestProtocolWorkedExample(t *testing.T) {
	section := markdownSection(t, protocolPath, "## 12. ")
	tr := readTranscript(t)
	checked := 0
	for _, b := range codeBlocks(section.text) {
		where := func(i int) string { return fmt.Sprintf("docs/PROTOCOL.md:%d", section.line+b.line+i) }
		if b.lang == "json" {
			values, err := decodeJSONValues(strings.Join(b.lines, "\n"))
			if err != nil {
				t.Errorf("%s: a json block that does not parse: %v", where(0), err)
				continue
			}
			for _, v := range values {
				checked += tr.checkMembers(t, where(0), v)
			}
			continue
		}
		for i := 0; i < len(b.lines); i++ {
			line := b.lines[i]
			switch {
			case strings.TrimSpace(line) == "":
			case jsonLabel.MatchString(line), strings.HasPrefix(line, "{"):
				// JSON, or a decoded header or payload, which may go on
				// over the lines that follow, indented.
				text := line
				if m := jsonLabel.FindStringSubmatch(line); m != nil {
					text = m[2]
				}
				for !json.Valid([]byte(text)) && i+1 < len(b.lines) && strings.HasPrefix(b.lines[i+1], " ") {
					i++
					text += " " + strings.TrimSpace(b.lines[i])
				}
				values, err := decodeJSONValues(text)
				if err != nil {
					t.Errorf("%s: %v in %q", where(i), err, line)
					continue
				}
				for _, v := range values {
					checked += tr.checkMembers(t, where(i), v)
				}
			case headerLine.MatchString(line):
				m := headerLine.FindStringSubmatch(line)
				if !tr.hasHeader(m[1], m[2]) {
					t.Errorf("%s: %q is in no request or response of the transcript", where(i), line)
				}
				checked++
			case strings.Contains(line, " = "):
				// "name = value", or "name = how = value".
				v := line[strings.LastIndex(line, " = ")+3:]
				if !tr.contains(v) {
					t.Errorf("%s: %q: %s is not in the transcript", where(i), line, v)
				}
				checked++
			case bareToken.MatchString(line):
				if !tr.hasToken(line) {
					t.Errorf("%s: %q is not a value of the transcript", where(i), line)
				}
				checked++
			default:
				t.Errorf("%s: cannot check %q: a code block of §12 shows header fields (name: value), JSON, decoded tokens (header/payload {…}), tokens, or name = value", where(i), line)
			}
		}
	}
	for _, s := range inlineValues(section.text) {
		if !tr.contains(s.value) {
			t.Errorf("docs/PROTOCOL.md:%d: %s, quoted in the prose, is not in the transcript", section.line+s.line, s.value)
		}
		checked++
	}
	t.Logf("%d values of §12 checked", checked)
	if checked < 100 {
		t.Errorf("only %d values of §12 checked; is the section where this test looks?", checked)
	}
}

// TestAuditDocExamples checks that the audit records docs/AUDIT.md shows
// are records of docs/examples/exchange.txt.
func TestAuditDocExamples(t *testing.T) {
	doc, err := os.ReadFile(auditDocPath)
	if err != nil {
		t.Fatal(err)
	}
	tr := readTranscript(t)
	n := 0
	for i, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, `{"time":`) {
			continue
		}
		n++
		if !slices.Contains(tr.lines, "audit "+line) {
			t.Errorf("docs/AUDIT.md:%d: this audit record is not one of docs/examples/exchange.txt:\n%s", i+1, line)
		}
	}
	if n == 0 {
		t.Error("docs/AUDIT.md shows no audit record")
	}
}

var (
	// jsonLabel is a decoded JOSE header or payload: a label, then JSON.
	jsonLabel = regexp.MustCompile(`^((?:proof )?(?:header|payload))\s+(\{.*)$`)
	// headerLine is a header field: name (or :pseudo-header), ": ", value.
	headerLine = regexp.MustCompile(`^(:?[a-z0-9-]+): (.*)$`)
	// bareToken is a token (a JWS) alone on its line, maybe shortened.
	bareToken = regexp.MustCompile(`^[A-Za-z0-9_.-]+…?$`)
	// randomRun is a run of base64url characters long and mixed enough to
	// be a random value (a jti, a nonce, a signature): quoted in prose, it
	// must come from the transcript.
	randomRun = regexp.MustCompile(`[A-Za-z0-9_-]{12,}`)
)

// transcript is docs/examples/exchange.txt, indexed.
type transcript struct {
	text    string
	lines   []string
	headers [][2]string      // every request and response header field
	members map[string][]any // every JSON member with a scalar value (or a list of scalars), by name
	strings []string         // every JSON string value
	// errorInfos are the decoded google.rpc.ErrorInfo details.
	errorInfos []map[string]any
}

func readTranscript(t *testing.T) *transcript {
	t.Helper()
	b, err := os.ReadFile(exchangePath)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transcript{text: string(b), lines: strings.Split(string(b), "\n"), members: map[string][]any{}}
	for i := 0; i < len(tr.lines); i++ {
		line := tr.lines[i]
		for _, prefix := range []string{"request  ", "response header   ", "response trailer  "} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				var name, value string
				if strings.HasPrefix(rest, ":") {
					name, value, _ = strings.Cut(rest, " ")
				} else {
					name, value, _ = strings.Cut(rest, ":")
					value = strings.TrimPrefix(value, " ")
				}
				tr.headers = append(tr.headers, [2]string{name, value})
			}
		}
		text := ""
		if line == "{" {
			// A pretty-printed value, up to its closing brace.
			var block []string
			for ; i < len(tr.lines); i++ {
				block = append(block, tr.lines[i])
				if tr.lines[i] == "}" {
					break
				}
			}
			text = strings.Join(block, "\n")
		} else if j := strings.Index(line, "{"); j >= 0 {
			text = line[j:]
		}
		if text == "" {
			continue
		}
		values, err := decodeJSONValues(text)
		if err != nil {
			continue // a brace in prose
		}
		for _, v := range values {
			walkObjects(v, func(obj map[string]any) {
				if obj["@type"] == errorInfoType {
					tr.errorInfos = append(tr.errorInfos, obj)
				}
			})
			walkMembers(v, func(name string, value any) {
				tr.members[name] = append(tr.members[name], value)
				if s, ok := value.(string); ok {
					tr.strings = append(tr.strings, s)
				}
			})
		}
	}
	return tr
}

// errorInfoType is the type URL of google.rpc.ErrorInfo, whose decoded
// objects are compared whole: none of its members may be left out.
const errorInfoType = "type.googleapis.com/google.rpc.ErrorInfo"

// checkMembers checks every member of v (at any depth) and returns how
// many it checked.
func (tr *transcript) checkMembers(t *testing.T, where string, v any) int {
	t.Helper()
	n := 0
	walkObjects(v, func(obj map[string]any) {
		if obj["@type"] != errorInfoType {
			return
		}
		n++
		if !slices.ContainsFunc(tr.errorInfos, func(got map[string]any) bool { return matchValue(obj, got) }) {
			b, _ := json.Marshal(obj)
			t.Errorf("%s: this ErrorInfo, members and metadata, is not one of the transcript: %s", where, b)
		}
	})
	walkMembers(v, func(name string, value any) {
		if name == "…" {
			return // stands for members left out
		}
		n++
		if !slices.ContainsFunc(tr.members[name], func(got any) bool { return matchValue(value, got) }) {
			b, _ := json.Marshal(value)
			t.Errorf("%s: member %q: %s is in no JSON of the transcript", where, name, b)
		}
	})
	return n
}

func (tr *transcript) hasHeader(name, value string) bool {
	return slices.ContainsFunc(tr.headers, func(h [2]string) bool { return h[0] == name && matchShortened(value, h[1]) })
}

// hasToken reports whether token (maybe shortened) is a whole line, a
// header value or a JSON string of the transcript.
func (tr *transcript) hasToken(token string) bool {
	match := func(s string) bool { return matchShortened(token, s) }
	return slices.ContainsFunc(tr.lines, match) || slices.ContainsFunc(tr.strings, match) ||
		slices.ContainsFunc(tr.headers, func(h [2]string) bool { return match(h[1]) })
}

// contains reports whether every part of s between …s is in the transcript.
func (tr *transcript) contains(s string) bool {
	for _, part := range strings.Split(s, "…") {
		if !strings.Contains(tr.text, part) {
			return false
		}
	}
	return true
}

// matchShortened reports whether got is want, or begins with what want
// has before its first … and ends with what it has after its last …,
// with the parts between in order.
func matchShortened(want, got string) bool {
	parts := strings.Split(want, "…")
	if len(parts) == 1 {
		return want == got
	}
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(got, first) || !strings.HasSuffix(got[len(first):], last) {
		return false
	}
	rest := got[len(first) : len(got)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

// matchValue compares a JSON value of the documentation with one of the
// transcript: strings with matchShortened, lists element by element,
// objects member by member (the same names, none left out).
func matchValue(want, got any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && matchShortened(w, g)
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !matchValue(w[i], g[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !matchValue(wv, gv) {
				return false
			}
		}
		return true
	default: // json.Number, bool, nil
		return want == got
	}
}

// walkObjects calls f for every object in v, at any depth.
func walkObjects(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, e := range v {
			walkObjects(e, f)
		}
	case []any:
		for _, e := range v {
			walkObjects(e, f)
		}
	}
}

// walkMembers calls f for every member of every object in v whose value
// is a scalar or a list of scalars; it descends into the others.
func walkMembers(v any, f func(name string, value any)) {
	switch v := v.(type) {
	case map[string]any:
		for name, e := range v {
			switch e := e.(type) {
			case map[string]any:
				walkMembers(e, f)
			case []any:
				if slices.ContainsFunc(e, func(x any) bool {
					_, obj := x.(map[string]any)
					_, list := x.([]any)
					return obj || list
				}) {
					walkMembers(e, f)
				} else {
					f(name, e)
				}
			default:
				f(name, e)
			}
		}
	case []any:
		for _, e := range v {
			walkMembers(e, f)
		}
	}
}

// decodeJSONValues decodes a sequence of JSON values, numbers as
// json.Number.
func decodeJSONValues(text string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// section is part of a Markdown file and the line it starts at (0-based
// offset to add to 1-based line numbers within it).
type section struct {
	text string
	line int
}

// markdownSection returns the section that starts with the heading
// prefix, up to the next heading of the same level.
func markdownSection(t *testing.T, path, heading string) section {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	level := heading[:strings.Index(heading, " ")+1]
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, heading) })
	if start < 0 {
		t.Fatalf("%s has no heading %q", path, heading)
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], level) {
			end = i
			break
		}
	}
	return section{text: strings.Join(lines[start:end], "\n"), line: start}
}

// codeBlock is a fenced code block: its language, its lines, and the line
// of its first line within the section (1-based).
type codeBlock struct {
	lang  string
	lines []string
	line  int
}

func codeBlocks(text string) []codeBlock {
	var out []codeBlock
	var cur *codeBlock
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			if cur == nil {
				cur = &codeBlock{lang: strings.TrimPrefix(l, "```"), line: i + 2}
			} else {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, l)
		}
	}
	return out
}

// inlineValue is a random-looking value quoted in prose.
type inlineValue struct {
	value string
	line  int
}

// inlineValues returns the random-looking runs inside the inline code
// spans of text's prose (outside code blocks), with the … that shortens
// them. A span may go on over the next line.
func inlineValues(text string) []inlineValue {
	var out []inlineValue
	fenced, inSpan := false, false
	var span strings.Builder
	spanLine := 0
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			fenced, inSpan = !fenced, false
			continue
		}
		if fenced {
			continue
		}
		for j, part := range strings.Split(l, "`") {
			if j > 0 {
				if inSpan {
					s := span.String()
					for _, r := range randomRun.FindAllStringIndex(s, -1) {
						v := s[r[0]:r[1]]
						if !mixed(v) {
							continue
						}
						if strings.HasPrefix(s[r[1]:], "…") {
							v += "…"
						}
						out = append(out, inlineValue{value: v, line: spanLine})
					}
					span.Reset()
				} else {
					spanLine = i + 1
				}
				inSpan = !inSpan
			}
			if inSpan {
				span.WriteString(part)
			}
		}
		if inSpan {
			span.WriteString(" ")
		}
	}
	return out
}

// mixed reports whether s has lower-case and upper-case letters and
// digits, as random base64url does and names do not.
func mixed(s string) bool {
	return strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") &&
		strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(s, "0123456789")
}
