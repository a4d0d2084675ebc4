package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is the command's version when set at build time with
// -ldflags "-X main.version=..."; otherwise the build information says it.
var version = ""

// cmdVersion runs "meowmx version": the module's version, and the VCS
// revision the command was built from when the build recorded it.
func cmdVersion(e *env) error {
	fs := newFlagSet(e, "version", "Usage: meowmx version\n\nPrints the version of meowmx and the revision it was built from.")
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, versionLine(version, readBuildInfo()))
	return nil
}

func readBuildInfo() *debug.BuildInfo {
	info, _ := debug.ReadBuildInfo()
	return info
}

// versionLine describes the build: "meowmx VERSION", then the revision and
// its time, and "modified" when the tree had uncommitted changes.
func versionLine(set string, info *debug.BuildInfo) string {
	v := set
	if v == "" && info != nil {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	parts := []string{"meowmx " + v}
	if info != nil {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			parts = append(parts, "revision "+rev[:min(12, len(rev))])
			if t := settings["vcs.time"]; t != "" {
				parts = append(parts, "of "+t)
			}
			if settings["vcs.modified"] == "true" {
				parts = append(parts, "(modified)")
			}
		}
		parts = append(parts, info.GoVersion)
	}
	return strings.Join(parts, " ")
}
