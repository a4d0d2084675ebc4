package pgdriver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
)

// listenKeepalive is how long Listen waits for a notification before it
// pings the connection to find out whether it is still there.
const listenKeepalive = 15 * time.Second

// Listen holds one connection, outside the pool, listening on the schema's
// channel, and calls wake with each notification's category, until ctx ends
// or the connection fails. An idle connection is pinged every
// listenKeepalive, so that a dead one is noticed.
//
// With ListenURL it connects there; with TransactionPooled and no ListenURL
// it returns an error matching meowmxdriver.ErrNoListen that says why.
func (d *Driver) Listen(ctx context.Context, schema string, listening func(), wake func(category string)) error {
	var config *pgx.ConnConfig
	var err error
	switch {
	case d.listenURL != "":
		if config, err = pgx.ParseConfig(d.listenURL); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	case d.pooled:
		return fmt.Errorf("%w: the pool goes through a pooler in transaction mode, where a LISTEN does not outlive its transaction, and no ListenURL bypasses it; subscriptions poll", meowmxdriver.ErrNoListen)
	default:
		if config, err = d.pool.ListenConfig(ctx); err != nil {
			return ctxOr(ctx, fmt.Errorf("listen: %w", err))
		}
		if config == nil {
			return fmt.Errorf("%w: the pool's driver does not tell how it connects, and no ListenURL says where to listen; subscriptions poll", meowmxdriver.ErrNoListen)
		}
	}
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return ctxOr(ctx, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel(schema)}.Sanitize()); err != nil {
		return ctxOr(ctx, fmt.Errorf("listen: %w", err))
	}
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenKeepalive)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil && n != nil:
			wake(n.Payload)
		case err == nil:
			return errors.New("listen: the connection's notifications go elsewhere (its configuration's OnNotification)")
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			if err := conn.Ping(ctx); err != nil {
				return ctxOr(ctx, err)
			}
		default:
			return err
		}
	}
}

// ctxOr returns nil once ctx has ended (the caller stopped listening), and
// err otherwise.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Notify sends one notification per category on the schema's channel, in a
// transaction of its own that does not wait for its commit record to be
// flushed: a notification is a hint, and a lost one is made up for by the
// subscriptions' polls.
func (d *Driver) Notify(ctx context.Context, schema string, categories []string) error {
	if len(categories) == 0 {
		return nil
	}
	return mapError(d.withConn(ctx, func(conn PooledConn) error {
		_, err := conn.Exec(ctx, notifySQL, Channel(schema), categories)
		return err
	}))
}
