//go:build !unix

package pgcluster

import "os/exec"

// lookupRunAs returns nil: only Unix systems need to drop root.
func lookupRunAs() (*osUser, error) { return nil, nil }

// apply does nothing off Unix.
func (u *osUser) apply(cmd *exec.Cmd) {}

// own does nothing off Unix.
func (u *osUser) own(dir string) error { return nil }
