package meowmxdriver

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one numbered schema change, read from a file named
// NNN_name.up.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads the *.up.sql files in dir of fsys, ordered by version,
// with every "{{key}}" in their text replaced by vars[key].
func LoadMigrations(fsys fs.FS, dir string, vars map[string]string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migrations []Migration
	for _, entry := range entries {
		name, ok := strings.CutSuffix(entry.Name(), ".up.sql")
		if !ok {
			continue
		}
		num, label, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration file %q: want NNN_name.up.sql", entry.Name())
		}
		text, err := fs.ReadFile(fsys, path.Join(dir, entry.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", entry.Name(), err)
		}
		sql := string(text)
		for key, value := range vars {
			sql = strings.ReplaceAll(sql, "{{"+key+"}}", value)
		}
		if i := strings.Index(sql, "{{"); i >= 0 {
			return nil, fmt.Errorf("migration %q: unreplaced placeholder near %q", entry.Name(), sql[i:min(len(sql), i+30)])
		}
		migrations = append(migrations, Migration{Version: version, Name: label, SQL: sql})
	}
	slices.SortFunc(migrations, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(migrations); i++ {
		if migrations[i].Version == migrations[i-1].Version {
			return nil, fmt.Errorf("two migrations numbered %d", migrations[i].Version)
		}
	}
	return migrations, nil
}

// ApplyPending calls apply, in order, for each migration whose version is not
// among applied, and returns the versions it applied.
func ApplyPending(migrations []Migration, applied []int, apply func(Migration) error) ([]int, error) {
	var done []int
	for _, m := range migrations {
		if slices.Contains(applied, m.Version) {
			continue
		}
		if err := apply(m); err != nil {
			return done, fmt.Errorf("migration %03d_%s: %w", m.Version, m.Name, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}
