// Package buildinfo reads what the Go toolchain stamped into the binary: the module
// version (set by `go install …@vX`), the VCS revision and time `go build` recorded,
// and the Go version. `notifier version` prints it; notifier_build_info labels it.
package buildinfo

import "runtime/debug"

// Info describes the running build.
type Info struct {
	Version   string // module version, "(devel)" for a local build
	Revision  string // VCS commit, "unknown" when not stamped; "(modified)" follows a dirty tree's
	Time      string // VCS commit time, RFC 3339, "" when not stamped
	GoVersion string // the toolchain that built the binary, "" when unknown
}

// Read returns the running binary's Info.
func Read() Info {
	info := Info{Version: "(devel)", Revision: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	info.GoVersion = bi.GoVersion
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		info.Revision += " (modified)"
	}
	return info
}
