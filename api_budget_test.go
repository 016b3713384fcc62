package stepup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"testing"
)

// apiBudget is the most exported names each public package may have,
// deprecated names not counted (they go at the release their godoc
// names). The count is what a reader of the package's godoc meets: the
// exported top-level functions, types, constants and variables, and the
// exported methods of exported types (not struct fields, not interface
// methods), in the non-test, non-generated files. A change that needs
// more raises the budget in the same commit and says why; one that removes
// names lowers it. `go test -run TestAPIBudget -v .` prints the counts.
var apiBudget = map[string]int{
	"interceptor":          228,
	"challenge":            185,
	"dpop":                 100,
	"gateway":              41,
	"metrics":              14,
	"auditlog":             102,
	"challenge/redisstore": 27,
}

// apiCount is the exported names of a package, and of those the
// deprecated ones.
type apiCount struct{ exported, deprecated int }

// countAPI counts the exported names the files of one package declare.
func countAPI(files []*ast.File) apiCount {
	var c apiCount
	add := func(name string, docs ...*ast.CommentGroup) {
		if !ast.IsExported(name) {
			return
		}
		c.exported++
		if isDeprecated(docs...) {
			c.deprecated++
		}
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Recv != nil && len(d.Recv.List) > 0 && !ast.IsExported(recvType(d.Recv.List[0].Type)) {
					continue
				}
				add(d.Name.Name, d.Doc)
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						add(s.Name.Name, s.Doc, singleSpecDoc(d))
					case *ast.ValueSpec:
						for _, n := range s.Names {
							add(n.Name, s.Doc, s.Comment, singleSpecDoc(d))
						}
					}
				}
			}
		}
	}
	return c
}

func TestAPIBudget(t *testing.T) {
	pkgs, _ := moduleGodoc(t, ".")
	for _, path := range slices.Sorted(maps.Keys(apiBudget)) {
		pkg, ok := pkgs[path]
		if !ok {
			t.Errorf("%s: no such package (moved? update apiBudget)", path)
			continue
		}
		var files []*ast.File
		for _, f := range pkg.files {
			files = append(files, f.ast)
		}
		c := countAPI(files)
		current, budget := c.exported-c.deprecated, apiBudget[path]
		t.Logf("%-22s %3d exported, %2d of them deprecated: %3d current (budget %d)", path, c.exported, c.deprecated, current, budget)
		if current > budget {
			t.Errorf("%s exports %d current names, over its budget of %d: make fewer names do, or raise the budget in apiBudget and say why", path, current, budget)
		}
	}
}

// TestCountAPI checks the count on a package whose answer is known.
func TestCountAPI(t *testing.T) {
	const src = `package p

// A is counted.
type A struct{ Field int } // fields are not

type b struct{}

// M of an exported type is counted; m and methods of b are not.
func (A) M()  {}
func (*A) m() {}
func (b) N()  {}

// I's methods are not counted.
type I interface{ Do() }

const (
	C1 = 1 // counted
	c2 = 2
)

// Old is counted, and deprecated.
//
// Deprecated: use New.
func Old() {}

// New is counted.
func New() {}

var V, w = 1, 2 // V counted
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := countAPI([]*ast.File{f}), (apiCount{exported: 7, deprecated: 1}); got != want {
		t.Fatalf("countAPI = %+v, want %+v (A, A.M, I, C1, Old, New, V; Old deprecated)", got, want)
	}
}
