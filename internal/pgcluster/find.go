package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled reports that a PostgreSQL server program could not be
// found. FindBin wraps it with the program name and how to install it.
var ErrNotInstalled = errors.New("postgresql server programs not found")

// installHint tells a user how to get the server programs.
const installHint = `install PostgreSQL ("apt-get install postgresql" on Debian/Ubuntu, "brew install postgresql" on macOS) or put its bin directory on PATH`

// FindBin returns the absolute path of a PostgreSQL server program (initdb,
// pg_ctl, postgres). It looks on PATH first, then in /usr/lib/postgresql/*/bin
// (newest version first), /usr/local/pgsql/bin, /opt/homebrew/bin and the
// Homebrew postgresql* kegs (newest first). Distributions keep the server
// programs off PATH, hence the list. When none is found the error wraps
// ErrNotInstalled and says how to install PostgreSQL.
func FindBin(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, filepath.Separator) {
		return "", fmt.Errorf("find %q: not a program name", name)
	}
	if p, err := exec.LookPath(name); err == nil {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("find %s: %w", name, err)
		}
		return abs, nil
	}
	for _, dir := range searchDirs() {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("find %s: %w; %s", name, ErrNotInstalled, installHint)
}

// searchDirs lists the directories FindBin tries after PATH, in order.
func searchDirs() []string {
	var dirs []string
	dirs = append(dirs, newestFirst("/usr/lib/postgresql/*/bin")...)
	dirs = append(dirs, "/usr/local/pgsql/bin", "/opt/homebrew/bin")
	dirs = append(dirs, newestFirst("/usr/local/opt/postgresql*/bin")...)
	dirs = append(dirs, newestFirst("/opt/homebrew/opt/postgresql*/bin")...)
	return dirs
}

// newestFirst expands a pattern whose one wildcard names a version directory
// (15, 9.6, postgresql@16) and orders the matches by that version, newest
// first; glob order would put 9.6 after 16.
func newestFirst(pattern string) []string {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil
	}
	// The versioned element is the parent of "bin".
	version := func(p string) []int { return parseVersion(filepath.Base(filepath.Dir(p))) }
	slices.SortStableFunc(matches, func(a, b string) int {
		return slices.Compare(version(b), version(a))
	})
	return matches
}

// parseVersion extracts the dotted number from a directory name such as "15",
// "9.6" or "postgresql@16"; a name without digits yields nil, which sorts last.
func parseVersion(s string) []int {
	start := strings.IndexFunc(s, isDigit)
	if start < 0 {
		return nil
	}
	var v []int
	for _, part := range strings.Split(s[start:], ".") {
		end := strings.IndexFunc(part, func(r rune) bool { return !isDigit(r) })
		if end >= 0 {
			part = part[:end]
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// isExecutable reports whether p is a regular file with an execute bit set.
func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
