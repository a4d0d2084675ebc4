package main

import "fmt"

// version is the command's version, set at build time with
// -ldflags "-X main.version=...".
var version = "devel"

// cmdVersion runs "meowmx version": it prints the version.
func cmdVersion(e *env) error {
	fs := newFlagSet(e, "version", "Usage: meowmx version\n\nPrints the version of meowmx.")
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "meowmx %s\n", version)
	return nil
}
