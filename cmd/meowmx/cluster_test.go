package main

import (
	"strings"
	"testing"

	"github.com/meowmx/meowmx/internal/testdb"
)

// TestMigrateAfterMove: "meowmx migrate" on a schema restored into another
// cluster says what it found and what it did, and the store keeps its order.
func TestMigrateAfterMove(t *testing.T) {
	t.Parallel()
	b := testdb.NewCluster(t)
	pool, err := testdb.NewPool(b.URL(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	schema := testdb.SchemaName(t)
	testdb.AdvanceCounter(t, testdb.Pool(t), testdb.Counter(t, pool)+5000)
	mustRun(t, "", "--db", testdb.URL(), "--schema", schema, "migrate")
	old := decodeLines(t, mustRun(t, "", "--db", testdb.URL(), "--schema", schema,
		"append", "order", "1", "--type", "Placed", "--data", "{}").stdout)
	if err := b.RestoreSchema(t.Context(), testdb.URL(), schema); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "", "--db", b.URL(), "--schema", schema, "migrate")
	for _, want := range []string{"now on cluster", "behind the stored positions", "new positions now follow them"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("migrate after a move printed %q, want it to say %q", r.stdout, want)
		}
	}
	if r := mustRun(t, "", "--db", b.URL(), "--schema", schema, "migrate"); !strings.Contains(r.stdout, "up to date") || strings.Contains(r.stdout, "cluster") {
		t.Fatalf("migrate again printed %q", r.stdout)
	}
	mustRun(t, "", "--db", b.URL(), "--schema", schema, "append", "order", "1", "--type", "Paid", "--data", "{}", "--expect", "0")
	all := decodeLines(t, mustRun(t, "", "--db", b.URL(), "--schema", schema, "read", "--all").stdout)
	if len(all) != 2 || all[0]["position"] != old[0]["position"] || all[1]["version"] != float64(1) {
		t.Fatalf("after the move the log reads %v", all)
	}
}
