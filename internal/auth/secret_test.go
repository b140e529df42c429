package auth

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-0123456789abcdef0123456789"
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to umask
			t.Fatal(err)
		}
		return p
	}
	plain := file("plain", secret+"\n", 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name    string
		value   string
		file    string
		want    string
		wantErr string // substring; "" means success
	}{
		{name: "neither", want: ""},
		{name: "value", value: secret, want: secret},
		{name: "value kept as is", value: " " + secret + "\n", want: " " + secret + "\n"},
		{name: "both", value: secret, file: plain, wantErr: "both a value and a file are set"},
		{name: "file", file: plain, want: secret},
		{name: "no trailing newline", file: file("bare", secret, 0o400), want: secret},
		{name: "CRLF", file: file("crlf", secret+"\r\n", 0o600), want: secret},
		{name: "several newlines", file: file("nl", secret+"\n\n", 0o600), want: secret},
		{name: "inner newline and spaces kept", file: file("inner", " a\nb \n", 0o600), want: " a\nb "},
		{name: "world readable, as mounted secrets are", file: file("mounted", secret, 0o644), want: secret},
		{name: "read-only for all", file: file("ro", secret, 0o444), want: secret},
		{name: "symlink", file: link, want: secret},
		{name: "group writable", file: file("gw", secret, 0o660), wantErr: "mode 0660 lets group or others write it"},
		{name: "world writable", file: file("ww", secret, 0o602), wantErr: "mode 0602 lets group or others write it"},
		{name: "empty", file: file("empty", "", 0o600), wantErr: "file is empty"},
		{name: "only newline", file: file("newline", "\r\n", 0o600), wantErr: "file is empty"},
		{name: "too large", file: file("large", strings.Repeat("x", maxSecretFileBytes+1), 0o600), wantErr: "larger than 65536 bytes"},
		{name: "missing", file: filepath.Join(dir, "missing"), wantErr: "no such file"},
		{name: "directory", file: dir, wantErr: "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if runtime.GOOS == "windows" && strings.Contains(tt.wantErr, "mode") {
				t.Skip("permission bits are synthetic on Windows")
			}
			got, err := ReadSecret(tt.value, tt.file)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ReadSecret = %q, want error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "read secret") {
					t.Errorf("error %q, want it to start with %q and contain %q", err, "read secret", tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadSecret: %v", err)
			}
			if !bytes.Equal(got, []byte(tt.want)) || (tt.want == "" && got != nil) {
				t.Errorf("ReadSecret = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadSecretDevice(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	// An endless device must be refused, not read.
	if _, err := ReadSecret("", "/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadSecret(/dev/zero) error = %v, want not a regular file", err)
	}
}
