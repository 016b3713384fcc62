package stepup_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// floor is one floor of the module (docs/ARCHITECTURE.md, "The floors"): a
// package may import the packages of the floors below its own and of its
// own floor, never of a floor above, nor those its floor lists in notImport.
type floor struct {
	name string
	// packages are paths inside the module: "x" is that package only,
	// "x/..." is x and every package under it. A package belongs to the
	// floor with the longest matching pattern.
	packages []string
	// notImport are patterns this floor must not import although they
	// are below it (the Guard does not import a factor or a store).
	notImport []string
}

// floors, from the ground up. Keep docs/ARCHITECTURE.md's table in step.
var floors = []floor{
	{name: "primitives", packages: []string{"internal/..."}},
	{name: "wire", packages: []string{"proto/...", "challenge/internal/testproto/...", "interceptor/internal/testproto/..."}},
	{name: "dpop", packages: []string{"dpop"}},
	{name: "factor interface", packages: []string{"challenge/factor"}},
	{name: "built-in factors", packages: []string{"challenge/totp", "challenge/devicekey", "challenge/approval"}},
	{name: "challenge", packages: []string{"challenge"}},
	{name: "plug-ins", packages: []string{"challenge/webauthn", "challenge/redisstore"}},
	{name: "guard", packages: []string{"interceptor"}, notImport: []string{"challenge/webauthn", "challenge/redisstore"}},
	{name: "services", packages: []string{"interceptor/oauth2token", "gateway/...", "approval", "auditlog", "metrics"}},
	{name: "test kits", packages: []string{"stepuptest", "testing/..."}},
	{name: "binaries", packages: []string{"cmd/...", "examples/...", ""}},
}

// testHarnessUsers are the packages other than tests and the test kits
// that may import testing/...: the demo plays the user's browser and runs
// a Node backend with them.
var testHarnessUsers = []string{"examples/demo"}

func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// floorOf returns the index of pkg's floor, -1 when it has none.
func floorOf(pkg string) int {
	best, bestLen := -1, -1
	for i, f := range floors {
		for _, p := range f.packages {
			if matches(p, pkg) && len(p) > bestLen {
				best, bestLen = i, len(p)
			}
		}
	}
	return best
}

// layeringViolations checks a package graph (path inside the module ->
// the paths inside the module it imports, tests left out) against floors.
func layeringViolations(graph map[string][]string) []string {
	var bad []string
	for pkg, imports := range graph {
		fl := floorOf(pkg)
		if fl < 0 {
			bad = append(bad, fmt.Sprintf("%q is on no floor: add it to floors and to docs/ARCHITECTURE.md", pkg))
			continue
		}
		for _, imp := range imports {
			il := floorOf(imp)
			switch {
			case il < 0:
				// Reported as its own package.
			case il > fl:
				bad = append(bad, fmt.Sprintf("%s (floor %s) imports %s, on the floor above it (%s)", pkg, floors[fl].name, imp, floors[il].name))
			case slices.ContainsFunc(floors[fl].notImport, func(p string) bool { return matches(p, imp) }):
				bad = append(bad, fmt.Sprintf("%s (floor %s) imports %s, which its floor must not", pkg, floors[fl].name, imp))
			case matches("testing/...", imp) && floors[fl].name != "test kits" && !slices.Contains(testHarnessUsers, pkg):
				bad = append(bad, fmt.Sprintf("%s imports the test harness %s: only tests may", pkg, imp))
			}
		}
		if matches("internal/...", pkg) && len(imports) > 0 {
			bad = append(bad, fmt.Sprintf("%s is a primitive, yet imports %v of the module", pkg, imports))
		}
	}
	slices.Sort(bad)
	return bad
}

// moduleGraph is the module's package graph from go list, tests left out.
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(goList(t, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")), "\n") {
		fields := strings.Fields(line)
		pkg := inModule(fields[0])
		graph[pkg] = nil
		for _, imp := range fields[1:] {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				graph[pkg] = append(graph[pkg], inModule(imp))
			}
		}
	}
	return graph
}

func inModule(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}

// TestNoUpwardImport fails when a package imports one on a floor above its
// own (docs/ARCHITECTURE.md), when a primitive imports anything of the
// module, when a package that is not a test imports a test harness, and
// when a package is on no floor.
func TestNoUpwardImport(t *testing.T) {
	graph := moduleGraph(t)
	if len(graph) < 20 {
		t.Fatalf("go list found %d packages", len(graph))
	}
	for _, v := range layeringViolations(graph) {
		t.Error(v)
	}
}

// TestLayeringViolationsFound: the check reports each kind of violation
// in a graph that has them, and nothing in one that has none.
func TestLayeringViolationsFound(t *testing.T) {
	clean := map[string][]string{
		"internal/strictjson": nil,
		"dpop":                {"internal/strictjson"},
		"challenge":           {"dpop", "proto/stepup/v1"},
		"challenge/webauthn":  {"challenge"},
		"interceptor":         {"challenge", "dpop"},
		"stepuptest":          {"testing/testkit"},
		"examples/demo":       {"testing/browserkit"},
	}
	if v := layeringViolations(clean); len(v) != 0 {
		t.Fatalf("a clean graph: %v", v)
	}
	for name, tc := range map[string]struct {
		graph map[string][]string
		want  string
	}{
		"upward":                 {map[string][]string{"dpop": {"challenge"}}, "on the floor above it"},
		"guard imports a factor": {map[string][]string{"interceptor": {"challenge/webauthn"}}, "which its floor must not"},
		"primitive imports":      {map[string][]string{"internal/p256": {"internal/digest"}}, "is a primitive"},
		"harness in a library":   {map[string][]string{"gateway": {"testing/testkit"}}, "on the floor above it"},
		"harness in a binary":    {map[string][]string{"cmd/stepup": {"testing/relaykit"}}, "only tests may"},
		"no floor":               {map[string][]string{"util": nil}, "on no floor"},
	} {
		v := layeringViolations(tc.graph)
		if len(v) != 1 || !strings.Contains(v[0], tc.want) {
			t.Errorf("%s: %v, want one violation saying %q", name, v, tc.want)
		}
	}
}

// TestArchitectureDocNamesEveryFloor: docs/ARCHITECTURE.md names every
// floor and every package pattern of floors.
func TestArchitectureDocNamesEveryFloor(t *testing.T) {
	doc, err := os.ReadFile("docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range floors {
		if !strings.Contains(string(doc), "| "+f.name+" |") {
			t.Errorf("docs/ARCHITECTURE.md has no row for the floor %q", f.name)
		}
		for _, p := range f.packages {
			if p != "" && !strings.Contains(string(doc), "`"+p+"`") {
				t.Errorf("docs/ARCHITECTURE.md does not name %s (floor %s)", p, f.name)
			}
		}
	}
}

// TestServiceImportsNoFactor: in challenge (the Service, the protocol) and
// interceptor (the Guard), only challenge/deprecated.go, which keeps the
// TOTP, device-key and approval factors' old names for one release,
// imports a factor package.
func TestServiceImportsNoFactor(t *testing.T) {
	factorPkgs := []string{"challenge/totp", "challenge/devicekey", "challenge/approval", "challenge/webauthn"}
	fset := token.NewFileSet()
	for _, dir := range []string{"challenge", "interceptor"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") || name == filepath.Join("challenge", "deprecated.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path := inModule(strings.Trim(imp.Path.Value, `"`))
				if slices.Contains(factorPkgs, path) {
					t.Errorf("%s imports the factor package %s: call it through challenge.Factor", name, path)
				}
			}
		}
	}
}
