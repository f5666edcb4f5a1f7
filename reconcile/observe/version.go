package observe

import (
	"runtime"
	"runtime/debug"
)

// Version is the agent's version. The Makefile sets it from git describe;
// a plain `go build` or `go install` leaves "dev", and Build then reads the
// module version and the VCS stamp from the binary's build info.
var Version = "dev"

// BuildInfo is what a binary knows of how it was built.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
}

// Build returns the running binary's version, commit and Go version.
func Build() BuildInfo {
	b := BuildInfo{Version: Version, Commit: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Commit != "unknown" {
		b.Commit += "-dirty"
	}
	return b
}

// UserAgent is the User-Agent of every HTTP request Aegis makes.
func UserAgent() string { return "aegis-agent/" + Build().Version }
