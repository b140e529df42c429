package contract

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestReadmeReasons: the README's table of reasons is Reasons, row for row.
func TestReadmeReasons(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- reasons: generated from notifier/contract.Reasons; TestReadmeReasons checks it -->\n", "<!-- end reasons -->"
	_, rest, ok := strings.Cut(string(b), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md has no reasons table between %q and %q", begin, end)
	}
	var want strings.Builder
	want.WriteString("| reason | `/ws` close code | Socket.IO | what the client should do |\n|---|---|---|---|\n")
	for _, r := range Reasons() {
		fmt.Fprintf(&want, "| `%s` | %d | %s | %s |\n", r.Name, r.WSClose, r.SocketIO, r.Do)
	}
	if table != want.String() {
		t.Errorf("README.md's reasons table:\n%s\nwant (from Reasons):\n%s", table, want.String())
	}
}

// TestReasonsDistinct: no two reasons share a name or a close code.
func TestReasonsDistinct(t *testing.T) {
	names, codes := map[string]bool{}, map[int]bool{}
	for _, r := range Reasons() {
		if names[r.Name] || codes[r.WSClose] {
			t.Errorf("%+v repeats a name or a close code", r)
		}
		names[r.Name], codes[r.WSClose] = true, true
	}
}
