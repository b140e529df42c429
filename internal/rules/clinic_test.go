package rules

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite triggers/0004_clinic_rules.*.sql from triggers/clinic.yaml")

// TestClinicMigration keeps the built-in clinic rules migration equal to what the
// generator makes of triggers/clinic.yaml: the file DBAs review is the generator's.
func TestClinicMigration(t *testing.T) {
	f, err := ReadFile("../../triggers/clinic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := Apply(Set{}, f)
	if err != nil {
		t.Fatal(err)
	}
	m := Generate(Set{}, set)
	for path, want := range map[string]string{
		"../../triggers/0004_clinic_rules.up.sql":   m.Up,
		"../../triggers/0004_clinic_rules.down.sql": m.Down,
	} {
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the generator's output for triggers/clinic.yaml: run go test ./internal/rules -run TestClinicMigration -update", path)
		}
	}
	back, ok, err := State(m.Up)
	if err != nil || !ok {
		t.Fatalf("State(up) = %v, %v", ok, err)
	}
	if !equalSets(back, set) {
		t.Errorf("state line does not round-trip")
	}
}
