package config

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeKeys: the README's configuration table names every key, each once, and no
// key that does not exist.
func TestReadmeKeys(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	key := regexp.MustCompile("`([a-z0-9_.]+)`")
	var listed []string
	for line := range strings.Lines(section) {
		first, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		first, _, _ = strings.Cut("`"+first, " |")
		for _, m := range key.FindAllStringSubmatch(first, -1) {
			listed = append(listed, m[1])
		}
	}
	slices.Sort(listed)
	if dup := duplicates(listed); len(dup) > 0 {
		t.Errorf("listed more than once: %v", dup)
	}
	want := slices.Sorted(maps.Keys(defaults))
	listed = slices.Compact(listed)
	for _, k := range want {
		if _, found := slices.BinarySearch(listed, k); !found {
			t.Errorf("README.md's configuration table lacks %s", k)
		}
	}
	for _, k := range listed {
		if _, found := slices.BinarySearch(want, k); !found {
			t.Errorf("README.md's configuration table lists %s, which is no key", k)
		}
	}
}

func duplicates(sorted []string) []string {
	var dup []string
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] && (len(dup) == 0 || dup[len(dup)-1] != sorted[i]) {
			dup = append(dup, sorted[i])
		}
	}
	return dup
}
