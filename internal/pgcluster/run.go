package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// osUser is the account the PostgreSQL programs run as when the process is root.
type osUser struct {
	name     string
	uid, gid uint32
}

// runner runs PostgreSQL programs with a clean environment, in the cluster
// directory, as runAs when it is set.
type runner struct {
	dir   string
	runAs *osUser // nil: run as the current user
}

// run runs a program to completion and returns its combined output. A
// non-nil error names the program and carries the tail of that output, or
// the context's error when ctx ended first.
func (r runner) run(ctx context.Context, path string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = r.dir
	cmd.Env = childEnv(os.Environ())
	// One writer for both streams: exec then serialises the writes.
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start hands the postmaster's output to the log file (-l), so
	// nothing should hold our pipes after pg_ctl exits; do not hang if so.
	cmd.WaitDelay = 5 * time.Second
	r.runAs.apply(cmd)
	err := cmd.Run()
	name := filepath.Base(path)
	if len(args) > 0 && name == "pg_ctl" {
		name += " " + args[0]
	}
	switch {
	case err == nil:
		return out.Bytes(), nil
	case ctx.Err() != nil:
		return out.Bytes(), fmt.Errorf("%s: %w", name, ctx.Err())
	case out.Len() > 0:
		return out.Bytes(), fmt.Errorf("%s: %w: %s", name, err, tail(out.Bytes()))
	default:
		return out.Bytes(), fmt.Errorf("%s: %w", name, err)
	}
}

// exitCode returns the exit status carried by err, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// childEnv drops the PG* variables (PGDATA, PGPORT, ...) that would point the
// programs elsewhere, and the locale variables, then asks for the C locale so
// messages are English, which Start parses for "Address already in use".
func childEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C")
}

// tail returns the last lines of a program's output, short enough for an
// error message.
func tail(b []byte) string {
	const maxLines, maxBytes = 20, 4096
	s := strings.TrimSpace(string(b))
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}
