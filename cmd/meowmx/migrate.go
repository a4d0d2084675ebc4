package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// cmdMigrate runs "meowmx migrate": it creates or upgrades the schema and
// says what it applied, and what it changed when the database moved to
// another PostgreSQL cluster.
func cmdMigrate(e *env) error {
	fs := newFlagSet(e, "migrate", `Usage: meowmx migrate

Creates or upgrades the schema. Running it again is a no-op.

Examples:
  meowmx migrate
  meowmx migrate --db postgres://app@localhost/app --schema shop`)
	if _, err := parse(fs, e.args); err != nil {
		return err
	}
	b, err := open(e)
	if err != nil {
		return err
	}
	defer b.close()
	res, err := b.api.MigrateWithResult(e.ctx)
	if err != nil {
		return err
	}
	if c := res.Cluster; c != nil {
		fmt.Fprintf(e.stdout, "schema %s was last used on PostgreSQL cluster %d and is now on cluster %d\n",
			b.api.Schema(), c.PreviousSystemIdentifier, c.SystemIdentifier)
		if c.Rebased {
			fmt.Fprintf(e.stdout, "its transaction counter was behind the stored positions (up to %d/...): new positions now follow them (offset %d, was %d)\n",
				c.LastPosition, c.Offset, c.PreviousOffset)
		} else {
			fmt.Fprintf(e.stdout, "its transaction counter is ahead of the stored positions: nothing to change\n")
		}
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(e.stdout, "schema %s is up to date in %s\n", b.api.Schema(), b.label)
		return nil
	}
	applied := make([]string, len(res.Applied))
	for i, v := range res.Applied {
		applied[i] = strconv.Itoa(v)
	}
	if slices.Contains(res.Applied, 1) {
		fmt.Fprintf(e.stdout, "created schema %s in %s: applied migrations %s\n", b.api.Schema(), b.label, strings.Join(applied, ", "))
		return nil
	}
	fmt.Fprintf(e.stdout, "schema %s in %s: applied migration %s\n", b.api.Schema(), b.label, strings.Join(applied, ", "))
	return nil
}
