// Dcb shows Dynamic Consistency Boundaries on the embedded SQLite store
// (dcb.db in the current directory, or the file given as the first
// argument): a course that never takes more students than its capacity, and
// user names that are never claimed twice, decided by concurrent writers
// without a stream or an aggregate drawn in advance.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sync"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func main() {
	path := "dcb.db"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := run(context.Background(), path, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, path string, out io.Writer) error {
	db, err := meowmxsqlite.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := meowmx.New(meowmxsqlite.New(db), &meowmx.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}

	// Each run has a course and a user name of its own.
	run := uuid.NewString()[:8]

	// Course capacity: 12 students race for 10 places.
	course := "course:" + run
	var wg sync.WaitGroup
	results := make([]error, 12)
	for i := range results {
		wg.Go(func() { results[i] = subscribe(ctx, store, course, fmt.Sprintf("student:%s-%d", run, i), 10) })
	}
	wg.Wait()
	subscribed, full := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			subscribed++
		case errors.Is(err, errCourseFull):
			full++
		default:
			return err
		}
	}
	fmt.Fprintf(out, "course %s: %d students subscribed, %d found it full\n", course, subscribed, full)

	// A unique user name: 5 sign-ups race for one name.
	name := "username:alice-" + run
	claims := make([]error, 5)
	for i := range claims {
		wg.Go(func() { claims[i] = claimName(ctx, store, name, fmt.Sprint("user-", i)) })
	}
	wg.Wait()
	for i, err := range claims {
		var taken *meowmx.AppendConditionFailedError
		switch {
		case err == nil:
			fmt.Fprintf(out, "user-%d claimed %s\n", i, name)
		case errors.As(err, &taken):
			fmt.Fprintf(out, "user-%d: %s is taken (by event %s)\n", i, name, taken.Event.ID)
		default:
			return err
		}
	}
	return nil
}

var errCourseFull = errors.New("course full")

// subscribe subscribes a student to a course of capacity places: it reads
// the course's subscriptions, decides, and appends on the condition that no
// subscription came after what it read; when one did, it reads and decides
// again.
func subscribe(ctx context.Context, store *meowmx.Store[*sql.Tx], course, student string, capacity int) error {
	query := meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"StudentSubscribed"}, Tags: []string{course}}}}
	for {
		taken := 0
		cond := meowmx.AppendCondition{FailIfEventsMatch: query}
		for event, err := range store.QueryEvents(ctx, query, meowmx.Start, nil) {
			if err != nil {
				return err
			}
			taken++
			cond.After = event.Position
		}
		if taken >= capacity {
			return errCourseFull
		}
		_, err := store.AppendEvents(ctx, &cond, meowmx.Event{
			Type: "StudentSubscribed", Data: json.RawMessage(`{}`), Tags: []string{course, student},
		})
		if !errors.Is(err, meowmx.ErrAppendConditionFailed) {
			return err
		}
	}
}

// claimName registers user with name, on the condition that no event ever
// claimed it. The user has a stream of its own: a condition works with
// streams and expected versions too.
func claimName(ctx context.Context, store *meowmx.Store[*sql.Tx], name, user string) error {
	query := meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"UserRegistered"}, Tags: []string{name}}}}
	_, err := store.AppendIf(ctx, meowmx.NewStream("user", user+"-"+uuid.NewString()[:8]), meowmx.NoStream,
		meowmx.AppendCondition{FailIfEventsMatch: query},
		meowmx.Event{Type: "UserRegistered", Data: json.RawMessage(`{}`), Tags: []string{name}})
	return err
}
