// Package meowmx is an event store on PostgreSQL, with embedded SQLite for
// single-node use, local development and tests.
//
// Applications append events holding plain JSON to streams, read them back
// by stream, by category or in one global order, and rely on optimistic
// concurrency so that two writers never silently overwrite each other.
//
// # Streams and events
//
// A stream is a category, such as "order", and an ID, any non-empty string:
// Stream{Category: "order", ID: "1001"}, named "order-1001". An Event has a
// type, JSON data, optional JSON metadata and a UUID (generated when zero).
// Once recorded (RecordedEvent) it also has its version in the stream (from
// 0, without gaps), its Position in the global order and the time it was
// recorded.
//
// # Drivers
//
// A Store is generic over the type of the caller's transactions, chosen by
// its driver:
//
//	// PostgreSQL 14+, through pgx v5: transactions are pgx.Tx.
//	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: "shop"})
//
//	// Embedded SQLite: transactions are *sql.Tx.
//	db, err := meowmxsqlite.Open("events.db")
//	store, err := meowmx.New(meowmxsqlite.New(db), nil)
//
// Call Store.Migrate at start-up: it creates or upgrades the schema, is a
// no-op when the schema is up to date, and is safe to run from several
// processes at once.
//
// # Appending
//
// Store.Append records a batch atomically at the end of a stream, checking
// an ExpectedVersion first: Any, NoStream, StreamExists or the exact version
// of the stream's last event. A mismatch writes nothing and returns a
// *VersionConflictError (errors.Is(err, ErrVersionConflict)):
//
//	_, err := store.Append(ctx, meowmx.NewStream("order", "1001"), 3, meowmx.Event{
//		Type: "OrderShipped",
//		Data: json.RawMessage(`{"carrier":"cat"}`),
//	})
//
// Appending the same event IDs again at the same place returns the events
// recorded the first time: a retry after a lost reply never duplicates.
// Store.AppendTx does the same inside the caller's transaction, which it
// never commits or rolls back, so a read model written in that transaction
// changes together with the events.
//
// # Reading
//
// Store.ReadStream reads one stream, forward or backward; Store.LastEvent and
// Store.StreamVersion give its end. Store.ReadCategory and Store.ReadAll page
// through the global order after a Position, whose string form ("TX/SEQ")
// parses back with ParsePosition. Store.ReadQuery reads the events that
// match a Query of event types and tags (Event.Tags), across streams, in the
// same order. Store.Streams and Store.Categories list what the store holds.
//
// The global order never skips an event. On PostgreSQL each event records
// the id of the transaction that wrote it, and a global read returns only
// events of transactions older than every transaction still running, ordered
// by (transaction id, sequence): an event that commits late always comes
// after what a reader has already seen. A long-running transaction anywhere
// in the cluster therefore holds global readers back; Store.Horizon reports
// which one. On SQLite writers are serialized, so the sequence is commit
// order.
//
// Each stream's events appear in the global order in version order. Appends
// to one stream are serialized; an AppendTx in a transaction that took its id
// before the stream's previous writer would break that order, and fails with
// ErrTransactionTooOld (IsRetryable) instead.
//
// # Subscriptions
//
// Store.Subscribe returns a worker of a named, durable subscription: it
// reads a filter (categories, event types) in global order and hands batches
// to a Handler together with the transaction that then records the
// checkpoint, so a read model written through it changes exactly once per
// event (effects outside the transaction are at least once). Any number of
// workers can run one subscription: partitions (SubscriptionConfig.Partitions,
// by StreamHash) are shared among them under leases, and a dead worker's
// share is taken over when its lease runs out. Failing events are retried,
// then parked (Store.ParkedEvents, Store.ReplayParked) or stop the
// subscription. On PostgreSQL appends wake workers through LISTEN/NOTIFY,
// with polling as the fallback.
//
// # Errors
//
// Bad input (an empty category or ID, invalid JSON, an empty type, an event
// over Config.MaxEventSize, a malformed position) returns ErrInvalidInput
// before anything is sent to the database. ErrSchemaMissing means Migrate has
// not run; ErrClosed that the store was closed.
package meowmx
