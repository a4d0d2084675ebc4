package meowmxdriver_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/meowmx/meowmx/meowmxdriver"
)

func TestLoadMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"m/002_more.up.sql":    {Data: []byte("ALTER {{schema}}.t")},
		"m/001_first.up.sql":   {Data: []byte("CREATE {{schema}}.t")},
		"m/001_first.down.sql": {Data: []byte("DROP")},
		"m/README":             {Data: []byte("x")},
	}
	got, err := meowmxdriver.LoadMigrations(fsys, "m", map[string]string{"schema": `"s"`})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != 1 || got[0].Name != "first" || got[0].SQL != `CREATE "s".t` || got[1].Version != 2 {
		t.Fatalf("loaded %+v", got)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"unnumbered":  {"m/first.up.sql": {Data: []byte("x")}},
		"duplicate":   {"m/001_a.up.sql": {Data: []byte("x")}, "m/1_b.up.sql": {Data: []byte("y")}},
		"placeholder": {"m/001_a.up.sql": {Data: []byte("{{other}}")}},
	} {
		if _, err := meowmxdriver.LoadMigrations(fsys, "m", map[string]string{"schema": "s"}); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
}

func TestApplyPending(t *testing.T) {
	migrations := []meowmxdriver.Migration{{Version: 1, Name: "a"}, {Version: 2, Name: "b"}, {Version: 3, Name: "c"}}
	var ran []int
	done, err := meowmxdriver.ApplyPending(migrations, []int{1}, func(m meowmxdriver.Migration) error {
		ran = append(ran, m.Version)
		if m.Version == 3 {
			return errors.New("boom")
		}
		return nil
	})
	if !slices.Equal(ran, []int{2, 3}) || !slices.Equal(done, []int{2}) || err == nil || !strings.Contains(err.Error(), "003_c") {
		t.Fatalf("ran %v, done %v, err %v", ran, done, err)
	}
}
