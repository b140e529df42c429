package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// maxSecretFileBytes bounds what ReadSecret reads from a file; a secret is a
// few dozen bytes, so anything near this is the wrong file.
const maxSecretFileBytes = 64 << 10

// ReadSecret returns a secret given either inline (value, typically from an
// environment variable such as NOTIFIER_AUTH_JWT_SECRET) or in a file (file,
// typically a mounted Kubernetes or Docker secret). Setting both is an error;
// setting neither returns nil, nil and leaves the "required" decision to the
// caller. value is returned as is. From a file, trailing "\n" and "\r" are
// trimmed (echo and editors add them); what remains must not be empty.
//
// The file must be a regular file (after symlinks) of at most 64 KiB that
// neither group nor others may write: whoever can change the HS256 secret can
// mint tokens for every account. Read permission for group and others is
// accepted, because container secret mounts are 0444 (Docker) or 0644
// (Kubernetes' default) and the container is the boundary there; tighten it
// with chmod 0400 or defaultMode where you can. The write check is skipped on
// Windows, whose permission bits are synthetic.
//
// Errors name the file and the problem, never the secret.
func ReadSecret(value, file string) ([]byte, error) {
	switch {
	case value != "" && file != "":
		return nil, errors.New("read secret: both a value and a file are set; set one")
	case file == "" && value == "":
		return nil, nil
	case file == "":
		return []byte(value), nil
	}
	// Stat before opening: opening a FIFO would block until a writer came.
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := checkSecretFile(file, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil { // the file opened may differ from the one checked
		return nil, fmt.Errorf("read secret: %w", err)
	}
	if err := checkSecretFile(file, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read secret: %w", err)
	case len(b) > maxSecretFileBytes:
		return nil, fmt.Errorf("read secret %s: file is larger than %d bytes", file, maxSecretFileBytes)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("read secret %s: file is empty", file)
	}
	return b, nil
}

// checkSecretFile rejects anything but a regular file that only its owner
// may write.
func checkSecretFile(name string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read secret %s: not a regular file (%s)", name, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("read secret %s: mode %04o lets group or others write it (chmod go-w)", name, perm)
	}
	return nil
}
