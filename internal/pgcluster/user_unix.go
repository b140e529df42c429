//go:build unix

package pgcluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUser is the OS account the programs run as when the process is root.
const serverUser = "postgres"

// lookupRunAs returns the account to run the PostgreSQL programs as: nil
// when the process is not root, else the "postgres" user, because initdb and
// postgres refuse to run as root.
func lookupRunAs() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: look up OS user %q to run it as: %w (create it, e.g. \"useradd --system %s\", or run as a non-root user)", serverUser, err, serverUser)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up OS user %q: uid %q: %w", serverUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up OS user %q: gid %q: %w", serverUser, u.Gid, err)
	}
	return &osUser{name: serverUser, uid: uint32(uid), gid: uint32(gid)}, nil
}

// apply makes cmd run as u, with u's primary group and no supplementary
// groups (root's must not leak). A nil u leaves cmd alone.
func (u *osUser) apply(cmd *exec.Cmd) {
	if u == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
	}
}

// own gives dir to u, after checking that u can reach it: every directory
// above dir must be searchable by u, or initdb fails with a less clear error.
func (u *osUser) own(dir string) error {
	if u == nil {
		return nil
	}
	if err := u.checkSearchable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Chown(dir, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", dir, u.name, err)
	}
	return nil
}

// checkSearchable walks from dir up to the root and fails on the first
// directory u may not search. Only the mode bits are considered (no ACLs),
// and only u's primary group, since apply drops the others.
func (u *osUser) checkSearchable(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for d := real; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if !u.canSearch(fi) {
			return fmt.Errorf("directory %s is not searchable by OS user %s, which runs PostgreSQL because this process is root: choose another Options.Dir or chmod o+x it", d, u.name)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (u *osUser) canSearch(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell; let initdb decide
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case st.Gid == u.gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
