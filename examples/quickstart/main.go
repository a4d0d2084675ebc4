// Quickstart appends an order's events to the embedded SQLite store
// (meowmx.db in the current directory) and reads them back three ways.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func main() {
	ctx := context.Background()
	db, err := meowmxsqlite.Open("meowmx.db")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	store, err := meowmx.New(meowmxsqlite.New(db), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // before db.Close: deferred calls run last first
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	// Each run places a new order: a stream in the "order" category.
	order := meowmx.NewStream("order", uuid.NewString()[:8])
	placed, err := store.Append(ctx, order, meowmx.NoStream,
		meowmx.Event{Type: "OrderPlaced", Data: json.RawMessage(`{"items":["tea","cake"],"total":7.5}`)},
		meowmx.Event{Type: "OrderPaid", Data: json.RawMessage(`{"amount":7.5}`), Metadata: json.RawMessage(`{"correlation_id":"demo"}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("appended %d events to %s\n", len(placed), order)

	// Optimistic concurrency: a writer that saw version 0 cannot append now.
	_, err = store.Append(ctx, order, 0, meowmx.Event{Type: "OrderCancelled", Data: json.RawMessage(`{}`)})
	var conflict *meowmx.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Printf("refused: %v\n", conflict)
	}
	// Expecting the version it really has, the append succeeds.
	if _, err := store.Append(ctx, order, 1, meowmx.Event{Type: "OrderShipped", Data: json.RawMessage(`{"carrier":"cat"}`)}); err != nil {
		log.Fatal(err)
	}

	// By stream, in version order.
	events, err := store.ReadStream(ctx, order, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range events {
		fmt.Printf("  %s v%d %-12s %s\n", e.Stream, e.Version, e.Type, e.Data)
	}

	// By category and globally, in commit order, a page at a time.
	orders, err := store.ReadCategory(ctx, "order", meowmx.Start, &meowmx.ReadOpts{Limit: 1000})
	if err != nil {
		log.Fatal(err)
	}
	all, err := store.ReadAll(ctx, meowmx.Start, &meowmx.ReadOpts{Limit: 1000})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the store holds %d order events, %d events in all (first page); last position %s\n",
		len(orders), len(all), all[len(all)-1].Position)
}
