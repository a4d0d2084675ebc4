package meowmxpgxv5_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/storetest"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// TestGroupConnectionDropped: a group of appends whose connection is
// terminated while its statement runs fails every member, writes nothing,
// and the members' retries, with the same event IDs, are recorded.
func TestGroupConnectionDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	store := newStore(t, pool)

	// A transaction that has written version 0 of grp-b and stays open:
	// the group's insert of that version waits for it.
	tx, pid := beginWithPID(t, pool)
	if _, err := store.AppendTx(ctx, tx, meowmx.NewStream("grp", "b"), meowmx.NoStream, meowmx.Event{Type: "Blocker", Data: data}); err != nil {
		t.Fatal(err)
	}

	appends := make([]*storetest.GroupedAppend, 3)
	for i, id := range []string{"a", "b", "c"} {
		appends[i] = &storetest.GroupedAppend{
			Stream: meowmx.NewStream("grp", id), Expected: meowmx.Any,
			Events: []meowmx.Event{{ID: uuid.New(), Type: "Member", Data: json.RawMessage(`{}`)}, {ID: uuid.New(), Type: "Member", Data: data}},
		}
	}
	storetest.AppendAsGroup(t, store, appends, func() {
		var group int
		testdb.Eventually(t, func() (bool, string) {
			err := testdb.Pool(t).QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&group)
			return err == nil, fmt.Sprintf("the group's statement waits for the open transaction (%v)", err)
		})
		if _, err := testdb.Pool(t).Exec(ctx, `SELECT pg_terminate_backend($1)`, group); err != nil {
			t.Fatal(err)
		}
	})
	for _, a := range appends {
		if a.Err == nil {
			t.Fatalf("append to %s succeeded in a group whose connection was terminated", a.Stream)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range appends {
		if v, err := store.StreamVersion(ctx, a.Stream); err != nil || v != -1 {
			t.Fatalf("%s at version %d (%v) after its group failed, want -1", a.Stream, v, err)
		}
	}
	for _, a := range appends {
		got, err := store.Append(ctx, a.Stream, a.Expected, a.Events...)
		if err != nil || len(got) != 2 || got[0].ID != a.Events[0].ID || got[1].Version != 1 {
			t.Fatalf("retry of the append to %s: %v %+v", a.Stream, err, got)
		}
	}
}

// TestAppendCopy: a batch appended with COPY keeps every guarantee of an
// append: versions from the expected one on, without gaps; a conflict or a
// recorded event ID writes nothing; a retry returns the first recording.
func TestAppendCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t, testdb.Pool(t))
	stream := meowmx.NewStream("import", "copy")
	batch := make([]meowmx.Event, meowmxpgxv5.CopyThreshold)
	for i := range batch {
		batch[i] = meowmx.Event{ID: uuid.New(), Type: "Row", Data: json.RawMessage(fmt.Sprintf(`{"row":%d}`, i))}
	}
	recorded, err := store.Append(ctx, stream, meowmx.NoStream, batch...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recorded {
		if r.Version != int64(i) || r.ID != batch[i].ID || (i > 0 && r.Position.Compare(recorded[i-1].Position) <= 0) {
			t.Fatalf("event %d recorded as %+v", i, r)
		}
	}
	stored, err := store.ReadStream(ctx, stream, nil)
	if err != nil || len(stored) != len(batch) || stored[len(batch)-1].Position != recorded[len(batch)-1].Position {
		t.Fatalf("read back %d events (%v)", len(stored), err)
	}
	// The same batch again: an idempotent retry.
	again, err := store.Append(ctx, stream, meowmx.NoStream, batch...)
	if err != nil || again[0].Position != recorded[0].Position {
		t.Fatalf("retry of a copied batch: %v", err)
	}
	// A stale expected version, and a batch reusing a recorded ID: nothing.
	more := make([]meowmx.Event, meowmxpgxv5.CopyThreshold)
	for i := range more {
		more[i] = meowmx.Event{Type: "Row", Data: data}
	}
	var vc *meowmx.VersionConflictError
	if _, err := store.Append(ctx, stream, 3, more...); !errors.As(err, &vc) {
		t.Fatalf("copied batch with a stale version: %v", err)
	}
	more[len(more)-1].ID = batch[7].ID
	if _, err := store.Append(ctx, meowmx.NewStream("import", "other"), meowmx.NoStream, more...); !errors.Is(err, meowmx.ErrDuplicateEventID) {
		t.Fatalf("copied batch reusing an event ID: %v", err)
	}
	for _, s := range []meowmx.Stream{stream, meowmx.NewStream("import", "other")} {
		want := int64(len(batch) - 1)
		if s != stream {
			want = -1
		}
		if v, err := store.StreamVersion(ctx, s); err != nil || v != want {
			t.Fatalf("%s at version %d (%v), want %d", s, v, err, want)
		}
	}
}
