package meowmx_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// exampleDB opens a fresh SQLite file for an example.
func exampleDB() (*sql.DB, func()) {
	dir, err := os.MkdirTemp("", "meowmx-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := meowmxsqlite.Open(filepath.Join(dir, "events.db"))
	if err != nil {
		log.Fatal(err)
	}
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

// Append events to a stream and read them back.
func Example() {
	ctx := context.Background()
	db, cleanup := exampleDB()
	defer cleanup()

	store, err := meowmx.New(meowmxsqlite.New(db), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	order := meowmx.NewStream("order", "1001")
	_, err = store.Append(ctx, order, meowmx.NoStream,
		meowmx.Event{Type: "OrderPlaced", Data: json.RawMessage(`{"total":42}`)},
		meowmx.Event{Type: "OrderPaid", Data: json.RawMessage(`{"amount":42}`)},
	)
	if err != nil {
		log.Fatal(err)
	}

	events, err := store.ReadStream(ctx, order, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Println(e.Stream, e.Version, e.Type, string(e.Data))
	}
	// Output:
	// order-1001 0 OrderPlaced {"total":42}
	// order-1001 1 OrderPaid {"amount":42}
}

// Optimistic concurrency: an append expecting an old version fails with a
// *VersionConflictError and writes nothing.
func ExampleStore_Append_conflict() {
	ctx := context.Background()
	db, cleanup := exampleDB()
	defer cleanup()
	store, _ := meowmx.New(meowmxsqlite.New(db), nil)
	_ = store.Migrate(ctx)

	account := meowmx.NewStream("account", "7")
	deposit := meowmx.Event{Type: "Deposited", Data: json.RawMessage(`{"amount":10}`)}
	_, _ = store.Append(ctx, account, meowmx.NoStream, deposit)
	_, _ = store.Append(ctx, account, 0, deposit)

	// A writer that loaded the stream at version 0 is too late.
	_, err := store.Append(ctx, account, 0, deposit)
	var conflict *meowmx.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Println("conflict: expected", conflict.Expected, "but the stream is at", conflict.Actual)
	}
	fmt.Println(errors.Is(err, meowmx.ErrVersionConflict))
	// Output:
	// conflict: expected version 0 but the stream is at 1
	// true
}

// Page through every event in global order, resuming from a saved position.
func ExampleStore_ReadAll() {
	ctx := context.Background()
	db, cleanup := exampleDB()
	defer cleanup()
	store, _ := meowmx.New(meowmxsqlite.New(db), nil)
	_ = store.Migrate(ctx)

	for i := range 5 {
		stream := meowmx.NewStream("sensor", fmt.Sprint(i%2))
		_, _ = store.Append(ctx, stream, meowmx.Any, meowmx.Event{Type: "Measured", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}

	after := meowmx.Start
	for {
		page, err := store.ReadAll(ctx, after, &meowmx.ReadOpts{Limit: 2})
		if err != nil {
			log.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			fmt.Println(e.Position, e.Stream, string(e.Data))
		}
		// A position's string form can be stored and parsed back.
		after, _ = meowmx.ParsePosition(page[len(page)-1].Position.String())
	}
	// Output:
	// 0/1 sensor-0 {"i":0}
	// 0/2 sensor-1 {"i":1}
	// 0/3 sensor-0 {"i":2}
	// 0/4 sensor-1 {"i":3}
	// 0/5 sensor-0 {"i":4}
}

// Write a read-model row in the same transaction as the events: both commit
// or neither does.
func ExampleStore_AppendTx() {
	ctx := context.Background()
	db, cleanup := exampleDB()
	defer cleanup()
	store, _ := meowmx.New(meowmxsqlite.New(db), nil)
	_ = store.Migrate(ctx)
	_, _ = db.Exec(`CREATE TABLE order_totals (order_id TEXT PRIMARY KEY, total INTEGER)`)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := store.AppendTx(ctx, tx, meowmx.NewStream("order", "1"), meowmx.NoStream,
		meowmx.Event{Type: "OrderPlaced", Data: json.RawMessage(`{"total":42}`)}); err != nil {
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO order_totals VALUES ('1', 42)`); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	var total int
	_ = db.QueryRow(`SELECT total FROM order_totals WHERE order_id = '1'`).Scan(&total)
	version, _ := store.StreamVersion(ctx, meowmx.NewStream("order", "1"))
	fmt.Println("total", total, "version", version)
	// Output:
	// total 42 version 0
}

// On PostgreSQL, hand the driver a pgx pool; caller transactions are pgx.Tx.
func ExampleNew_postgres() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: "shop"})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = store.Append(ctx, meowmx.NewStream("order", "1"), meowmx.Any,
		meowmx.Event{Type: "OrderPlaced", Data: json.RawMessage(`{"total":42}`)})
	if err != nil {
		log.Fatal(err)
	}
}
