package socketio

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCloseReasonsCounted: every reason a session or socket is ended with has a
// series of notifier_connections_closed_total{transport="socketio"}, so none goes uncounted.
func TestCloseReasonsCounted(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "close" && sel.Sel.Name != "kill" && sel.Sel.Name != "kick") {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				reason, _ := strconv.Unquote(lit.Value)
				seen++
				if !slices.Contains(closeReasons, reason) {
					t.Errorf("%s: reason %q is not in closeReasons", fset.Position(lit.Pos()), reason)
				}
			}
			return true
		})
	}
	if seen < 10 {
		t.Fatalf("found %d literal reasons: the scan missed the calls", seen)
	}
	for _, err := range []error{errBinary, errMalformed} {
		if !slices.Contains(closeReasons, reasonFor(err)) {
			t.Errorf("reasonFor(%v) = %q is not in closeReasons", err, reasonFor(err))
		}
	}
}

func TestAddressKey(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"127.0.0.1:5000":        "127.0.0.1",
		"[::ffff:10.0.0.1]:443": "10.0.0.1",
		"[2001:db8:1:2:3::4]:1": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::]:2": "2001:db8:1:2::/64",
		"[::1]:80":              "::/64",
		"pipe":                  "pipe",
	} {
		if got := addressKey(remote); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", remote, got, want)
		}
	}
}
