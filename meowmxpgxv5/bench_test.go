package meowmxpgxv5_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
)

// The baselines write the same JSON into a plain table with a bigserial key
// and a unique (stream, version) index, in autocommit, on the same pool.

func baselineTable(b *testing.B) string {
	b.Helper()
	schema := testdb.SchemaName(b)
	table := pgx.Identifier{schema, "baseline"}.Sanitize()
	_, err := testdb.Pool(b).Exec(context.Background(), fmt.Sprintf(`CREATE SCHEMA %s;
CREATE TABLE %s (id bigserial PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, type text NOT NULL, data jsonb NOT NULL, UNIQUE (stream, version))`,
		pgx.Identifier{schema}.Sanitize(), table))
	if err != nil {
		b.Fatal(err)
	}
	return table
}

// BenchmarkAppend1: single-event appends with an exact expected version,
// each to a new stream, one writer.
func BenchmarkAppend1(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, meowmx.Event{Type: "Benched", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineInsert1(b *testing.B) {
	table := baselineTable(b)
	pool := testdb.Pool(b)
	ctx := context.Background()
	query := `INSERT INTO ` + table + ` (stream, version, type, data) VALUES ($1, 0, $2, $3)`
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := pool.Exec(ctx, query, fmt.Sprint("bench-", i), "Benched", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend100: 100-event batches.
func BenchmarkAppend100(b *testing.B) {
	store := newStore(b, testdb.Pool(b))
	ctx := context.Background()
	batch := make([]meowmx.Event, 100)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Benched", Data: data}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(i)), meowmx.NoStream, batch...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineInsert100(b *testing.B) {
	table := baselineTable(b)
	pool := testdb.Pool(b)
	ctx := context.Background()
	query := `INSERT INTO ` + table + ` (stream, version, type, data)
SELECT $1, v, $2, $3 FROM generate_series(0, 99) AS v`
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := pool.Exec(ctx, query, fmt.Sprint("bench-", i), "Benched", data); err != nil {
			b.Fatal(err)
		}
	}
}
