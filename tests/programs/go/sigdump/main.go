// sigdump prints the signature of every function declared in the Go files it is given,
// the way lumos funcs prints them: ground truth for lumos's tests, from Go's own parser.
//
//	pkg.Func(name type, ...) result          one name per parameter, grouping expanded
//	pkg.(*T).M(recv *pkg.T, x int) (a int, b error)
//
// Types of the file's own package are qualified with the package name, byte and rune
// are written uint8 and int32, any is interface {}: what DWARF calls them.
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"strings"
)

func main() {
	fset := token.NewFileSet()
	for _, path := range os.Args[1:] {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pkg := f.Name.Name
		local := map[string]bool{}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					local[s.(*ast.TypeSpec).Name.Name] = true
				}
			}
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			name := pkg + "." + fd.Name.Name
			var params []string
			if fd.Recv != nil {
				r := fd.Recv.List[0]
				t := typeString(fset, r.Type, pkg, local)
				if strings.HasPrefix(t, "*") {
					name = fmt.Sprintf("%s.(%s).%s", pkg, "*"+strings.TrimPrefix(t[1:], pkg+"."), fd.Name.Name)
				} else {
					name = fmt.Sprintf("%s.%s.%s", pkg, strings.TrimPrefix(t, pkg+"."), fd.Name.Name)
				}
				params = append(params, fields(fset, fd.Recv, pkg, local)...)
			}
			params = append(params, fields(fset, fd.Type.Params, pkg, local)...)
			out := name + "(" + strings.Join(params, ", ") + ")"
			res := fields(fset, fd.Type.Results, pkg, local)
			if len(res) == 1 && !strings.Contains(res[0], " ") {
				out += " " + res[0]
			} else if len(res) > 0 {
				out += " (" + strings.Join(res, ", ") + ")"
			}
			fmt.Println(out)
		}
	}
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
	printer.Fprint(&b, fset, e)
	s := b.String()
	s = strings.ReplaceAll(s, "interface{}", "interface {}")
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
	case *ast.StarExpr:
		return &ast.StarExpr{X: qualify(t.X, pkg, local)}
	case *ast.ArrayType:
		return &ast.ArrayType{Len: t.Len, Elt: qualify(t.Elt, pkg, local)}
	case *ast.MapType:
		return &ast.MapType{Key: qualify(t.Key, pkg, local), Value: qualify(t.Value, pkg, local)}
	case *ast.ChanType:
		return &ast.ChanType{Dir: t.Dir, Value: qualify(t.Value, pkg, local)}
	case *ast.FuncType:
		return &ast.FuncType{Params: qualifyList(t.Params, pkg, local), Results: qualifyList(t.Results, pkg, local)}
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
