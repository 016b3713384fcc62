package stepuptest_test

import (
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/stepuptest"
)

// TestGodocShowsTheKit: the kit's types are its own, so godoc lists their
// fields and methods: no alias, no exported field of an internal type,
// and the members a test needs are there, each documented.
func TestGodocShowsTheKit(t *testing.T) {
	fset := token.NewFileSet()
	var files []*ast.File
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/stepupgrpc/stepup/stepuptest")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]*doc.Type{}
	for _, ty := range pkg.Types {
		types[ty.Name] = ty
		spec := ty.Decl.Specs[0].(*ast.TypeSpec)
		if spec.Assign.IsValid() {
			t.Errorf("type %s is an alias: godoc shows none of its fields or methods", ty.Name)
		}
		if st, ok := spec.Type.(*ast.StructType); ok {
			for _, f := range st.Fields.List {
				if len(f.Names) == 0 {
					t.Errorf("type %s embeds %s: its members are documented elsewhere, if at all", ty.Name, types2string(f.Type))
				}
				for _, n := range f.Names {
					if n.IsExported() && f.Doc == nil && f.Comment == nil {
						t.Errorf("field %s.%s has no doc comment", ty.Name, n.Name)
					}
				}
			}
		}
		if strings.TrimSpace(ty.Doc) == "" {
			t.Errorf("type %s has no doc comment", ty.Name)
		}
	}
	want := map[string][]string{
		"Clock":        {"Advance", "Now", "Set"},
		"TokenIssuer":  {"PrivateKey", "PublicJWKS", "Token", "Verifier"},
		"TokenOptions": nil,
		"Caller":       nil,
	}
	for name, methods := range want {
		ty, ok := types[name]
		if !ok {
			t.Errorf("no type %s", name)
			continue
		}
		var got []string
		for _, m := range ty.Methods {
			got = append(got, m.Name)
			if strings.TrimSpace(m.Doc) == "" {
				t.Errorf("method %s.%s has no doc comment", name, m.Name)
			}
		}
		for _, m := range methods {
			if !slices.Contains(got, m) {
				t.Errorf("godoc lists no method %s.%s (it lists %v)", name, m, got)
			}
		}
	}
	if st := types["TokenOptions"].Decl.Specs[0].(*ast.TypeSpec).Type.(*ast.StructType); len(st.Fields.List) < 10 {
		t.Errorf("TokenOptions lists %d fields", len(st.Fields.List))
	}
}

func types2string(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		return "*" + types2string(s.X)
	}
	if s, ok := e.(*ast.SelectorExpr); ok {
		return types2string(s.X) + "." + s.Sel.Name
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return fmt.Sprintf("%T", e)
}

// A test moves time instead of sleeping: every component reads the same
// clock.
func ExampleClock() {
	clock := stepuptest.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	clock.Advance(90 * time.Minute)
	fmt.Println(clock.Now().Format(time.Kitchen))
	clock.Set(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC))
	fmt.Println(clock.Now().Format(time.DateOnly))
	// Output:
	// 10:30AM
	// 2026-12-08
}
