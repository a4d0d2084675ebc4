package meowmxdatabasesql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"log"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxdatabasesql"
)

// An append in the application's own transaction: the read model's row
// and the event commit together, or neither does.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://localhost:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	store, err := meowmx.New(meowmxdatabasesql.New(db), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance - $1 WHERE id = $2`, 10, "a1"); err != nil {
		log.Fatal(err)
	}
	stream := meowmx.Stream{Category: "account", ID: "a1"}
	if _, err := store.AppendTx(ctx, tx, stream, meowmx.Any,
		meowmx.Event{Type: "Withdrawn", Data: json.RawMessage(`{"amount":10}`)}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
}
