// sigdump prints the signature of every function declared in the Go files it is given,
// the way lumos funcs prints them: ground truth for lumos's tests, from Go's own parser.
//
//	pkg.Func(name type, ...) result          one name per parameter, grouping expanded
//	pkg.(*T).M(recv *pkg.T, x int) (a int, b error)
//
// Types of the file's own package are qualified with the package name, byte and rune
// are written uint8 and int32, any is interface {}: what DWARF calls them.
//
// The files given are one package: a type declared in any of them is the package's own.
// With -pkg IMPORTPATH first, function names carry the import path the way the binary
// names them (net/http.(*Server).Serve), while types keep the package name (*http.Server),
// which is how lumos funcs shortens them; parameters of variadic functions are []T.
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path"
	"strconv"
	"strings"
)

// imports maps the names a file imports packages by to the last element of their import
// path, which is how lumos shortens DWARF's type names (set per file; -pkg only).
var imports map[string]string

func main() {
	fset := token.NewFileSet()
	args := os.Args[1:]
	importPath := ""
	if len(args) > 1 && args[0] == "-pkg" {
		importPath, args = args[1], args[2:]
	}
	var files []*ast.File
	local := map[string]bool{}
	for _, path := range args {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		files = append(files, f)
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					local[s.(*ast.TypeSpec).Name.Name] = true
				}
			}
		}
	}
	if importPath != "" { // aliases, which DWARF writes as what they stand for
		for _, f := range files {
			setImports(f)
			for _, d := range f.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
					for _, s := range g.Specs {
						if ts := s.(*ast.TypeSpec); ts.Assign.IsValid() {
							pkg := path.Base(importPath)
							fmt.Printf("ALIAS %s.%s %s\n", pkg, ts.Name.Name,
								typeString(fset, ts.Type, pkg, local))
						}
					}
				}
			}
		}
	}
	for _, f := range files {
		pkg, qual := f.Name.Name, f.Name.Name
		if importPath != "" {
			pkg, qual = path.Base(importPath), importPath
			setImports(f)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || (importPath != "" && fd.Body == nil) {
				continue // with -pkg: a body elsewhere (assembly, linkname) has its own signature
			}
			name := qual + "." + fd.Name.Name
			var params []string
			if fd.Recv != nil {
				r := fd.Recv.List[0]
				t := typeString(fset, r.Type, pkg, local)
				if strings.HasPrefix(t, "*") {
					name = fmt.Sprintf("%s.(%s).%s", qual, "*"+strings.TrimPrefix(t[1:], pkg+"."), fd.Name.Name)
				} else {
					name = fmt.Sprintf("%s.%s.%s", qual, strings.TrimPrefix(t, pkg+"."), fd.Name.Name)
				}
				params = append(params, inputs(fields(fset, fd.Recv, pkg, local), fd.Recv)...)
			}
			params = append(params, inputs(fields(fset, fd.Type.Params, pkg, local), fd.Type.Params)...)
			out := name + "(" + strings.Join(params, ", ") + ")"
			res := fields(fset, fd.Type.Results, pkg, local)
			if len(res) == 1 && len(fd.Type.Results.List[0].Names) == 0 {
				out += " " + res[0]
			} else if len(res) > 0 {
				out += " (" + strings.Join(res, ", ") + ")"
			}
			fmt.Println(out)
		}
	}
}

// inputs names unnamed parameters "_", as lumos does (results stay unnamed).
func inputs(ps []string, fl *ast.FieldList) []string {
	if fl != nil && len(fl.List) > 0 && len(fl.List[0].Names) == 0 {
		for i := range ps {
			ps[i] = "_ " + ps[i]
		}
	}
	return ps
}

func fields(fset *token.FileSet, fl *ast.FieldList, pkg string, local map[string]bool) []string {
	var out []string
	if fl == nil {
		return out
	}
	for _, f := range fl.List {
		t := typeString(fset, f.Type, pkg, local)
		if len(f.Names) == 0 {
			out = append(out, t)
		}
		for _, n := range f.Names {
			out = append(out, n.Name+" "+t)
		}
	}
	return out
}

func typeString(fset *token.FileSet, e ast.Expr, pkg string, local map[string]bool) string {
	e = qualify(e, pkg, local)
	var b bytes.Buffer
	printer.Fprint(&b, token.NewFileSet(), e) // no positions: one line
	s := strings.Join(strings.Fields(b.String()), " ")
	s = strings.ReplaceAll(s, "interface{}", "interface {}")
	s = strings.ReplaceAll(s, "interface { }", "interface {}")
	s = strings.ReplaceAll(s, "struct{}", "struct {}")
	return s
}

// qualify rewrites identifiers: local types get the package name, aliases their target.
func qualify(e ast.Expr, pkg string, local map[string]bool) ast.Expr {
	switch t := e.(type) {
	case *ast.Ident:
		switch {
		case local[t.Name]:
			return &ast.SelectorExpr{X: ast.NewIdent(pkg), Sel: ast.NewIdent(t.Name)}
		case t.Name == "byte":
			return ast.NewIdent("uint8")
		case t.Name == "rune":
			return ast.NewIdent("int32")
		case t.Name == "any":
			return &ast.InterfaceType{Methods: &ast.FieldList{}}
		}
		return t
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok && imports[x.Name] != "" {
			return &ast.SelectorExpr{X: ast.NewIdent(imports[x.Name]), Sel: t.Sel}
		}
		return t
	case *ast.StarExpr:
		return &ast.StarExpr{X: qualify(t.X, pkg, local)}
	case *ast.IndexExpr:
		return &ast.IndexExpr{X: qualify(t.X, pkg, local), Index: qualify(t.Index, pkg, local)}
	case *ast.IndexListExpr:
		var idx []ast.Expr
		for _, x := range t.Indices {
			idx = append(idx, qualify(x, pkg, local))
		}
		return &ast.IndexListExpr{X: qualify(t.X, pkg, local), Indices: idx}
	case *ast.Ellipsis:
		return &ast.ArrayType{Elt: qualify(t.Elt, pkg, local)}
	case *ast.ArrayType:
		return &ast.ArrayType{Len: t.Len, Elt: qualify(t.Elt, pkg, local)}
	case *ast.MapType:
		return &ast.MapType{Key: qualify(t.Key, pkg, local), Value: qualify(t.Value, pkg, local)}
	case *ast.ChanType:
		return &ast.ChanType{Dir: t.Dir, Value: qualify(t.Value, pkg, local)}
	case *ast.FuncType:
		// DWARF names a func type by its parameter types only: func(int, string) error
		return &ast.FuncType{Params: unnamed(qualifyList(t.Params, pkg, local)),
			Results: unnamed(qualifyList(t.Results, pkg, local))}
	}
	return e
}

func qualifyList(fl *ast.FieldList, pkg string, local map[string]bool) *ast.FieldList {
	if fl == nil {
		return nil
	}
	out := &ast.FieldList{}
	for _, f := range fl.List {
		out.List = append(out.List, &ast.Field{Names: f.Names, Type: qualify(f.Type, pkg, local)})
	}
	return out
}

// unnamed expands "a, b int" into "int, int" (nil stays nil).
func unnamed(fl *ast.FieldList) *ast.FieldList {
	if fl == nil {
		return nil
	}
	out := &ast.FieldList{}
	for _, f := range fl.List {
		for i := 0; i < len(f.Names) || (i == 0 && len(f.Names) == 0); i++ {
			out.List = append(out.List, &ast.Field{Type: f.Type})
		}
	}
	return out
}

func setImports(f *ast.File) {
	imports = map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if im.Name != nil {
			imports[im.Name.Name] = path.Base(p)
		} else {
			imports[path.Base(p)] = path.Base(p)
		}
	}
}
