package stepup_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// godocPackage is one package of the module as its godoc sees it.
type godocPackage struct {
	path string // import path inside the module ("" for the root)
	name string
	// names are the package's declarations: "X" for a top-level name,
	// "T.M" for a method or an interface method, "T.F" for a struct field.
	names map[string]bool
	// deprecated are the names whose godoc has a "Deprecated:" paragraph.
	deprecated map[string]bool
	// deprecatedAt says where each deprecated name is declared.
	// removal is a deprecated name's "Deprecated:" paragraph.
	removal      map[string]string
	deprecatedAt map[string]string
	// members are the names of the package's methods and fields.
	members map[string]bool
	// fields are the package's struct fields, "T.F".
	fields map[string]bool
	files  []*godocFile
}

type godocFile struct {
	name    string // path relative to the module root
	ast     *ast.File
	imports map[string]string // local name -> module package path
}

// moduleGodoc parses every package of the module below root but the
// generated ones (*.pb.go) and test files.
func moduleGodoc(t *testing.T, root string) (map[string]*godocPackage, *token.FileSet) {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string]*godocPackage{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".") || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		generated := strings.HasSuffix(p, ".pb.go")
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		dir := filepath.ToSlash(filepath.Dir(rel))
		if dir == "." {
			dir = ""
		}
		pkg := pkgs[dir]
		if pkg == nil {
			pkg = &godocPackage{path: dir, name: f.Name.Name, names: map[string]bool{}, deprecated: map[string]bool{}, deprecatedAt: map[string]string{}, removal: map[string]string{}, members: map[string]bool{}, fields: map[string]bool{}}
			pkgs[dir] = pkg
		}
		gf := &godocFile{name: filepath.ToSlash(rel), ast: f, imports: map[string]string{}}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if ip != module && !strings.HasPrefix(ip, module+"/") {
				continue
			}
			local := ip[strings.LastIndex(ip, "/")+1:]
			if imp.Name != nil {
				local = imp.Name.Name
			}
			gf.imports[local] = inModule(ip)
		}
		if !generated { // a generated file's names count, not its godoc
			pkg.files = append(pkg.files, gf)
		}
		declare(pkg, gf, fset, !generated)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs, fset
}

func isDeprecated(docs ...*ast.CommentGroup) bool {
	for _, d := range docs {
		if d == nil {
			continue
		}
		for line := range strings.SplitSeq(d.Text(), "\n") {
			if strings.HasPrefix(line, "Deprecated:") {
				return true
			}
		}
	}
	return false
}

// deprecation returns the "Deprecated:" paragraph of docs.
func deprecation(docs ...*ast.CommentGroup) string {
	for _, d := range docs {
		if d == nil {
			continue
		}
		if _, after, ok := strings.Cut(d.Text(), "Deprecated:"); ok {
			para, _, _ := strings.Cut(after, "\n\n")
			return strings.Join(strings.Fields(para), " ")
		}
	}
	return ""
}

// declare records the names f declares.
func declare(pkg *godocPackage, f *godocFile, fset *token.FileSet, marks bool) {
	var docs []*ast.CommentGroup // of the name being added
	add := func(name string, deprecated bool, pos token.Pos) {
		if deprecated && marks {
			pkg.removal[name] = deprecation(docs...)
		}
		pkg.names[name] = true
		if i := strings.IndexByte(name, '.'); i >= 0 {
			pkg.members[name[i+1:]] = true
		}
		if deprecated && marks {
			pkg.deprecated[name] = true
			pkg.deprecatedAt[name] = fmt.Sprintf("%s:%d", f.name, fset.Position(pos).Line)
		}
	}
	for _, decl := range f.ast.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) > 0 {
				name = recvType(d.Recv.List[0].Type) + "." + name
			}
			docs = []*ast.CommentGroup{d.Doc}
			add(name, isDeprecated(d.Doc), d.Pos())
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					docs = []*ast.CommentGroup{s.Doc, singleSpecDoc(d)}
					add(s.Name.Name, isDeprecated(docs...), s.Pos())
					var fields *ast.FieldList
					switch tt := s.Type.(type) {
					case *ast.StructType:
						fields = tt.Fields
					case *ast.InterfaceType:
						fields = tt.Methods
					}
					if fields == nil {
						continue
					}
					for _, fl := range fields.List {
						docs = []*ast.CommentGroup{fl.Doc, fl.Comment}
						for _, n := range fl.Names {
							if _, ok := s.Type.(*ast.StructType); ok {
								pkg.fields[s.Name.Name+"."+n.Name] = true
							}
							add(s.Name.Name+"."+n.Name, isDeprecated(fl.Doc, fl.Comment), n.Pos())
						}
						if len(fl.Names) == 0 { // embedded
							add(s.Name.Name+"."+recvType(fl.Type), isDeprecated(fl.Doc, fl.Comment), fl.Pos())
						}
					}
				case *ast.ValueSpec:
					docs = []*ast.CommentGroup{s.Doc, s.Comment, singleSpecDoc(d)}
					for _, n := range s.Names {
						add(n.Name, isDeprecated(s.Doc, s.Comment, singleSpecDoc(d)), n.Pos())
					}
				}
			}
		}
	}
}

// singleSpecDoc is a declaration's doc when it declares one name only: then
// the doc is that name's. The doc of a group is its names' too when it
// deprecates them (as go doc and pkgsite read it).
func singleSpecDoc(d *ast.GenDecl) *ast.CommentGroup {
	if d.Lparen.IsValid() && !isDeprecated(d.Doc) {
		return nil
	}
	return d.Doc
}

func recvType(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return recvType(x.X)
	case *ast.IndexExpr:
		return recvType(x.X)
	case *ast.IndexListExpr:
		return recvType(x.X)
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.Ident:
		return x.Name
	}
	return ""
}

// godocReference is one identifier a doc comment names.
type godocReference struct {
	at   string   // file:line
	text string   // as written
	pkgs []string // the packages it may resolve to
	name string   // "X" or "T.M"
	// mustExist: the reference is written so that it can only be an
	// identifier (a doc link, or a module package's qualified name).
	mustExist bool
	// bare: a CamelCase word, which may also be a field or method.
	bare bool
}

var (
	// docLink is a doc link: [Name], [Name.Method], [pkg.Name],
	// [pkg.Name.Method], optionally with a star.
	docLink = regexp.MustCompile(`\[\*?((?:[a-z][a-z0-9]*\.)?[A-Z][A-Za-z0-9_]*(?:\.[A-Z][A-Za-z0-9_]*)?)\]`)
	// qualified is pkg.Name or pkg.Name.Member in text.
	qualified = regexp.MustCompile(`(^|[^A-Za-z0-9_.])([a-z][a-z0-9]*)\.([A-Z][A-Za-z0-9_]*)(?:\.([A-Z][A-Za-z0-9_]*))?`)
	// local is a name of the package itself written so that it can only be
	// one: *Name, `Name`, a CamelCase word of two humps or more, and
	// Type.Member.
	local = regexp.MustCompile("(^|[^A-Za-z0-9_.])(\\*|`)?([A-Z][A-Za-z0-9_]*)(?:\\.([A-Z][A-Za-z0-9_]*))?")
	camel = regexp.MustCompile(`^[A-Z][a-z0-9]+[A-Z]`)
)

// godocReferences returns the references of pkg's godoc outside
// deprecated.go and outside the godoc of deprecated names.
func godocReferences(pkgs map[string]*godocPackage, pkg *godocPackage, fset *token.FileSet) []godocReference {
	byName := map[string][]string{}
	for p, q := range pkgs {
		byName[q.name] = append(byName[q.name], p)
	}
	var refs []godocReference
	for _, f := range pkg.files {
		if filepath.Base(f.name) == "deprecated.go" {
			continue
		}
		for _, cg := range godocComments(f.ast) {
			line := 0
			for text := range strings.SplitSeq(cg.Text(), "\n") {
				line++
				at := fmt.Sprintf("%s:%d", f.name, fset.Position(cg.Pos()).Line+line-1)
				if strings.HasPrefix(strings.TrimSpace(text), "[") && strings.Contains(text, "]:") {
					continue // a link definition
				}
				refs = append(refs, lineReferences(text, at, pkg, f, byName)...)
			}
		}
	}
	return refs
}

// lineReferences returns the references of one line of godoc.
func lineReferences(text, at string, pkg *godocPackage, f *godocFile, byName map[string][]string) []godocReference {
	var refs []godocReference
	resolve := func(qual string) []string {
		// Prose may name a package the file does not import, or another
		// of the same name (approval the page, challenge/approval).
		ps := slices.Clone(byName[qual])
		if qual == pkg.name && !slices.Contains(ps, pkg.path) {
			ps = append(ps, pkg.path)
		}
		if p, ok := f.imports[qual]; ok && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
		return ps
	}
	for _, m := range docLink.FindAllStringSubmatch(text, -1) {
		parts := strings.Split(m[1], ".")
		if parts[0][0] >= 'a' && parts[0][0] <= 'z' {
			if ps := resolve(parts[0]); len(ps) > 0 {
				refs = append(refs, godocReference{at: at, text: m[0], pkgs: ps, name: strings.Join(parts[1:], "."), mustExist: true})
			}
			continue
		}
		refs = append(refs, godocReference{at: at, text: m[0], pkgs: []string{pkg.path}, name: m[1], mustExist: true})
	}
	for _, m := range qualified.FindAllStringSubmatch(text, -1) {
		name := m[3]
		if m[4] != "" {
			name += "." + m[4]
		}
		if ps := resolve(m[2]); len(ps) > 0 {
			refs = append(refs, godocReference{at: at, text: strings.TrimSpace(m[0][len(m[1]):]), pkgs: ps, name: name, mustExist: true})
		}
	}
	for _, m := range local.FindAllStringSubmatch(text, -1) {
		name := m[3]
		if m[4] != "" {
			name += "." + m[4]
		}
		if m[2] == "" && m[4] == "" && !camel.MatchString(m[3]) {
			continue // a capitalised word
		}
		refs = append(refs, godocReference{at: at, text: strings.TrimSpace(m[0][len(m[1]):]), pkgs: []string{pkg.path}, name: name, bare: m[2] == "" && m[4] == ""})
	}
	return refs
}

// godocComments are the doc comments of f: the package's, the
// declarations', the specs' and the fields', but not those of deprecated
// names, nor comments inside function bodies.
func godocComments(f *ast.File) []*ast.CommentGroup {
	var out []*ast.CommentGroup
	keep := func(cgs ...*ast.CommentGroup) {
		if isDeprecated(cgs...) {
			return
		}
		for _, cg := range cgs {
			if cg != nil {
				out = append(out, cg)
			}
		}
	}
	keep(f.Doc)
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			keep(d.Doc)
		case *ast.GenDecl:
			if d.Lparen.IsValid() {
				keep(d.Doc)
			}
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					keep(s.Doc, singleSpecDoc(d), s.Comment)
					ast.Inspect(s.Type, func(n ast.Node) bool {
						if fl, ok := n.(*ast.Field); ok {
							keep(fl.Doc, fl.Comment)
						}
						return true
					})
				case *ast.ValueSpec:
					keep(s.Doc, singleSpecDoc(d), s.Comment)
				}
			}
		}
	}
	return out
}

// godocFindings lists the references of godoc outside deprecated.go that
// name a deprecated identifier, or that can only be an identifier and name
// none.
func godocFindings(t *testing.T, root string) []string {
	t.Helper()
	pkgs, fset := moduleGodoc(t, root)
	var findings []string
	for _, pkg := range pkgs {
		for _, r := range godocReferences(pkgs, pkg, fset) {
			if f := finding(pkgs, r); f != "" {
				findings = append(findings, f)
			}
		}
	}
	slices.Sort(findings)
	return slices.Compact(findings)
}

// finding says what is wrong with r, "" when nothing is: r names a
// deprecated identifier when every package it may resolve to that
// declares the name deprecates it; it names a missing one when none
// declares it.
func finding(pkgs map[string]*godocPackage, r godocReference) string {
	first, _, _ := strings.Cut(r.name, ".")
	var found, deprecated []string
	for _, p := range r.pkgs {
		target := pkgs[p]
		if target == nil || !target.names[first] {
			continue
		}
		if target.deprecated[r.name] || target.deprecated[first] {
			deprecated = append(deprecated, qualify(target, r.name))
		} else {
			found = append(found, qualify(target, r.name))
		}
	}
	switch {
	case len(deprecated) > 0 && len(found) == 0:
		if r.bare && pkgs[r.pkgs[0]].members[r.name] {
			return "" // a field or method of the same name
		}
		return fmt.Sprintf("%s: %s names deprecated %s", r.at, r.text, strings.Join(deprecated, ", "))
	case len(deprecated) == 0 && len(found) == 0 && r.mustExist:
		return fmt.Sprintf("%s: %s names %s, which does not exist", r.at, r.text, r.name)
	}
	return ""
}

func qualify(pkg *godocPackage, name string) string {
	return pkg.name + "." + name
}

// TestGodocNamesNoDeprecatedOrMissingIdentifier fails when godoc outside a
// deprecated.go names a deprecated identifier (*Error in dpop, MemoryStore
// in dpop, a deprecated option) or, in a doc link or a module package's
// qualified name, one that does not exist.
func TestGodocNamesNoDeprecatedOrMissingIdentifier(t *testing.T) {
	for _, f := range godocFindings(t, ".") {
		t.Error(f)
	}
}

// TestDeprecatedNamesLiveInDeprecatedGo fails when a name is deprecated
// outside its package's deprecated.go (a struct field, which cannot move,
// is the exception) or when its godoc does not say the release that
// removes it.
func TestDeprecatedNamesLiveInDeprecatedGo(t *testing.T) {
	pkgs, _ := moduleGodoc(t, ".")
	n := 0
	for _, pkg := range pkgs {
		for name, at := range pkg.deprecatedAt {
			n++
			if !strings.Contains(pkg.removal[name], "next release") {
				t.Errorf("%s: the godoc of deprecated %s.%s does not name the release that removes it: %q", at, pkg.name, name, pkg.removal[name])
			}
			file, _, _ := strings.Cut(at, ":")
			if filepath.Base(file) != "deprecated.go" {
				if !pkg.fields[name] {
					t.Errorf("%s: %s.%s is deprecated outside %s/deprecated.go", at, pkg.name, name, pkg.path)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("found no deprecated name: the walk is broken")
	}
	t.Logf("%d deprecated names", n)
}
