package stepup_test

import (
	"fmt"
	"go/ast"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// optionLike reports whether an exported type name is an option's:
// "Option" or a name ending in it (ClientOption, ClockOption). Plural
// names (totp.Options, auditlog.VerifyOptions) are data, and stay structs.
func optionLike(name string) bool {
	return ast.IsExported(name) && strings.HasSuffix(name, "Option")
}

// optionStyleFindings returns what breaks the one option form in the
// packages of the module below root (docs/ARCHITECTURE.md, "Options"):
//
//   - an option type (optionLike) that is not an interface whose methods
//     are all unexported, or that embeds anything but the package's own
//     option types: a func type or a struct lets a user build, call or
//     compare options the constructor does not check;
//   - a WithClock that does not return the package's ClockOption, or a
//     ClockOption that does not embed every other option type of its
//     package (the one clock option serves every constructor);
//   - a ClockOption or WithClock whose godoc does not follow the shared
//     wording (the time source, the default, a nil clock is a mistake);
//   - a function that makes an option (its one result is an option type,
//     of its package or another) whose godoc does not state the default
//     (STYLE.md, habit 4), deprecated ones aside.
func optionStyleFindings(t *testing.T, root string) []string {
	pkgs, fset := moduleGodoc(t, root)
	var bad []string
	at := func(n ast.Node) string { return fset.Position(n.Pos()).String() }
	for _, pkg := range pkgs {
		optionTypes := map[string]*ast.TypeSpec{}
		var typeDocs = map[string]*ast.CommentGroup{}
		var withClock []*ast.FuncDecl
		for _, f := range pkg.files {
			for _, d := range f.ast.Decls {
				switch d := d.(type) {
				case *ast.GenDecl:
					if d.Tok != token.TYPE {
						continue
					}
					for _, s := range d.Specs {
						ts := s.(*ast.TypeSpec)
						if optionLike(ts.Name.Name) {
							optionTypes[ts.Name.Name] = ts
							typeDocs[ts.Name.Name] = ts.Doc
							if typeDocs[ts.Name.Name] == nil {
								typeDocs[ts.Name.Name] = d.Doc
							}
						}
					}
				case *ast.FuncDecl:
					if d.Recv == nil && d.Name.Name == "WithClock" {
						withClock = append(withClock, d)
					}
					if makesOption(d) && !isDeprecated(d.Doc) && !strings.Contains(strings.ToLower(d.Doc.Text()), "default") {
						bad = append(bad, fmt.Sprintf("%s: the godoc of %s.%s does not state the option's default", at(d), pkg.name, d.Name.Name))
					}
				}
			}
		}
		for name, ts := range optionTypes {
			where := fmt.Sprintf("%s: %s.%s", at(ts), pkg.name, name)
			it, ok := ts.Type.(*ast.InterfaceType)
			if ts.Assign != 0 || !ok {
				bad = append(bad, fmt.Sprintf("%s is %s, not an interface with unexported methods", where, kindOf(ts)))
				continue
			}
			for _, m := range it.Methods.List {
				if len(m.Names) == 0 {
					id, ok := m.Type.(*ast.Ident)
					if !ok || optionTypes[id.Name] == nil {
						bad = append(bad, fmt.Sprintf("%s embeds %s, not an option type of its package", where, exprString(m.Type)))
					}
					continue
				}
				for _, n := range m.Names {
					if n.IsExported() {
						bad = append(bad, fmt.Sprintf("%s has the exported method %s: anyone could implement the option", where, n.Name))
					}
				}
			}
		}
		if len(withClock) == 0 {
			continue
		}
		clock := optionTypes["ClockOption"]
		for _, fd := range withClock {
			res := fd.Type.Results
			if res == nil || len(res.List) != 1 || len(res.List[0].Names) > 1 || exprString(res.List[0].Type) != "ClockOption" {
				bad = append(bad, fmt.Sprintf("%s: %s.WithClock returns %s, not the package's ClockOption", at(fd), pkg.name, resultString(res)))
			}
			if doc := fd.Doc.Text(); !strings.HasPrefix(doc, "WithClock sets the time source of ") ||
				!strings.Contains(strings.Join(strings.Fields(doc), " "), "Default time.Now; a nil clock is a mistake") {
				bad = append(bad, fmt.Sprintf("%s: the godoc of %s.WithClock does not say \"WithClock sets the time source of ...\" and \"Default time.Now; a nil clock is a mistake ...\"", at(fd), pkg.name))
			}
		}
		if clock == nil {
			bad = append(bad, fmt.Sprintf("%s: package %s has WithClock but no ClockOption", at(withClock[0]), pkg.path))
			continue
		}
		if doc := typeDocs["ClockOption"].Text(); !strings.HasPrefix(doc, "ClockOption is the option WithClock returns: it sets the time source of ") {
			bad = append(bad, fmt.Sprintf("%s: the godoc of %s.ClockOption does not start \"ClockOption is the option WithClock returns: it sets the time source of\"", at(clock), pkg.name))
		}
		it, ok := clock.Type.(*ast.InterfaceType)
		if !ok {
			continue // reported above
		}
		var embedded []string
		for _, m := range it.Methods.List {
			if id, ok := m.Type.(*ast.Ident); ok && len(m.Names) == 0 {
				embedded = append(embedded, id.Name)
			}
		}
		for name := range optionTypes {
			if name != "ClockOption" && !slices.Contains(embedded, name) {
				bad = append(bad, fmt.Sprintf("%s: %s.ClockOption does not embed %s: WithClock must serve every constructor of its package", at(clock), pkg.name, name))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// makesOption reports whether fd is an exported function (or method) whose
// one result is an option type.
func makesOption(fd *ast.FuncDecl) bool {
	res := fd.Type.Results
	if !fd.Name.IsExported() || res == nil || len(res.List) != 1 || len(res.List[0].Names) > 1 {
		return false
	}
	name := exprString(res.List[0].Type)
	return optionLike(name[strings.LastIndex(name, ".")+1:])
}

func kindOf(ts *ast.TypeSpec) string {
	if ts.Assign != 0 {
		return "an alias of " + exprString(ts.Type)
	}
	switch ts.Type.(type) {
	case *ast.FuncType:
		return "a func type"
	case *ast.StructType:
		return "a struct"
	}
	return "the type " + exprString(ts.Type)
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(e.X)
	case *ast.FuncType:
		return "func(...)"
	case *ast.StructType:
		return "struct{...}"
	}
	return fmt.Sprintf("%T", e)
}

func resultString(res *ast.FieldList) string {
	if res == nil {
		return "nothing"
	}
	var out []string
	for _, f := range res.List {
		out = append(out, exprString(f.Type))
	}
	return strings.Join(out, ", ")
}

// TestOneOptionStyle fails when a package's options are not in the one
// form the module uses: an interface with an unexported apply, one
// ClockOption per package made by WithClock (optionStyleFindings).
func TestOneOptionStyle(t *testing.T) {
	for _, f := range optionStyleFindings(t, ".") {
		t.Error(f)
	}
}

// TestOptionStyleFindingsFound checks that optionStyleFindings sees each
// way out of the form, on packages written for the purpose.
func TestOptionStyleFindingsFound(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("functype/o.go", `package functype

import "time"

type config struct{ now func() time.Time }

// Option configures.
type Option func(*config) error

// WithClock sets the time source of a thing. Default time.Now; a nil clock is a mistake New reports.
func WithClock(now func() time.Time) Option { return nil }
`)
	write("structclock/o.go", `package structclock

import "time"

// Option configures.
type Option interface{ apply() error }

// ServerOption configures the other side.
type ServerOption interface{ Apply() error }

// ClockOption sets the clock.
type ClockOption struct{ now func() time.Time }

// WithClock sets the clock.
func WithClock(now func() time.Time) ClockOption { return ClockOption{now} }
`)
	write("partialclock/o.go", `package partialclock

import "time"

// Option configures a Guard.
type Option interface{ applyGuard() error }

// ClientOption configures a Client.
type ClientOption interface{ applyClient() error }

// ClockOption is the option WithClock returns: it sets the time source of a Guard.
type ClockOption interface{ Option }

// WithClock sets the time source of a Guard. Default time.Now; a nil clock is a mistake New reports.
func WithClock(now func() time.Time) ClockOption { return nil }
`)
	write("good/o.go", `package good

import "time"

// Option configures a Guard.
type Option interface{ applyGuard() error }

// ClockOption is the option WithClock returns: it sets the time source of a Guard.
type ClockOption interface{ Option }

// WithClock sets the time source of a Guard. Default time.Now; a nil clock is a mistake New reports.
func WithClock(now func() time.Time) ClockOption { return nil }

// Options are data, not an option.
type Options struct{ Digits int }
`)
	write("nodefault/o.go", `package nodefault

import "example.com/good"

// Option configures a Guard.
type Option interface{ applyGuard() error }

// WithLimit sets the limit.
func WithLimit(n int) Option { return nil }

// WithOther enables the other thing.
func WithOther() good.Option { return nil }

// WithOld sets the old thing.
//
// Deprecated: use WithLimit. It goes in the next release.
func WithOld() Option { return nil }
`)
	got := optionStyleFindings(t, dir)
	for _, want := range []string{
		"functype.Option is a func type",
		"functype.WithClock returns Option, not the package's ClockOption",
		"package functype has WithClock but no ClockOption",
		"structclock.ClockOption is a struct",
		"structclock.ServerOption has the exported method Apply",
		"the godoc of structclock.WithClock does not say",
		"the godoc of structclock.ClockOption does not start",
		"partialclock.ClockOption does not embed ClientOption",
		"the godoc of nodefault.WithLimit does not state the option's default",
		"the godoc of nodefault.WithOther does not state the option's default",
	} {
		if !slices.ContainsFunc(got, func(f string) bool { return strings.Contains(f, want) }) {
			t.Errorf("no finding %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, f := range got {
		if strings.Contains(f, "good/") || strings.Contains(f, "WithOld") {
			t.Errorf("a finding in the package that follows the form: %s", f)
		}
	}
}
