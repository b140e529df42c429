package web_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pgnotifier/notifier/notifier/contract"
	"github.com/pgnotifier/notifier/notifier/hub"
)

// TestReasonsTranslated: every reason the server can give the page (a refused token,
// a connection limit, an ended connection) has its pt-BR wording, so a Brazilian
// clinic never reads the server's English.
func TestReasonsTranslated(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	_, pt, ok := strings.Cut(string(src), "'pt-BR': {")
	_, pt, ok2 := strings.Cut(pt, "reasons: {")
	pt, _, ok3 := strings.Cut(pt, "\n      },")
	if !ok || !ok2 || !ok3 {
		t.Fatal("app.js has no pt-BR reasons table")
	}
	translated := map[string]bool{}
	for _, m := range regexp.MustCompile(`'((?:[^'\\]|\\.)+)': '`).FindAllStringSubmatch(pt, -1) {
		translated[m[1]] = true
	}
	want := []string{hub.ErrConnectionLimit.Error(), hub.ErrAccountConnectionLimit.Error(),
		"too many snapshots in progress: retry", "snapshot failed: the database is unavailable, retry"}
	for _, r := range contract.Reasons() {
		want = append(want, r.Name)
	}
	want = append(want, authRefusals(t)...)
	for _, r := range want {
		if !translated[r] {
			t.Errorf("app.js's pt-BR reasons lack %q", r)
		}
	}
}

// authRefusals returns the message of every error internal/auth declares.
func authRefusals(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../internal/auth/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "New" {
			if lit, ok := call.Args[0].(*ast.BasicLit); ok {
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("found %d auth errors in internal/auth/errors.go", len(out))
	}
	return out
}
