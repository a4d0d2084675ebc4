package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxnats"
)

// cmdRelay runs "meowmx relay": the log relayed to NATS JetStream until
// interrupted.
func cmdRelay(e *env) error {
	fs := newFlagSet(e, "relay", `Usage: meowmx relay [--nats URL] [--stream NAME] [--subjects PREFIX] [--category C ...] [--partitions N] [--lease 30s] [--metrics HOST:PORT]

Relays the store's events to a NATS JetStream stream, each to the subject
PREFIX.<category>.<stream id> with its event ID as Nats-Msg-Id, exactly once
and in version order per stream, and records its progress as the meowmx
subscription --subscription (created at the start of the log if new). It
creates the JetStream stream if it does not exist, and refuses one whose
duplicate window is shorter than it needs (the lease, twice the publish
timeout and a minute). Run several with --partitions N to share the work:
each stream stays with one of them. SIGINT or SIGTERM stops it gracefully.

Examples:
  meowmx relay
  meowmx relay --nats nats://127.0.0.1:4222 --stream ORDERS --subjects orders --category order
  meowmx relay --partitions 4 --metrics 127.0.0.1:9465`)
	url := fs.String("nats", nats.DefaultURL, "the NATS server")
	stream := fs.String("stream", meowmxnats.StreamDefault, "the JetStream stream")
	subjects := fs.String("subjects", meowmxnats.SubjectPrefixDefault, "the subject prefix")
	name := fs.String("subscription", meowmxnats.SubscriptionDefault, "the meowmx subscription recording the relay's progress")
	partitions := fs.Int("partitions", 1, "number of partitions of a new subscription")
	batch := fs.Int("batch", meowmx.BatchSizeDefault, "most events per batch")
	lease := fs.Duration("lease", meowmx.LeaseDefault, "the subscription's lease: a relay that dies hands its partitions over after it")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics")
	var categories []string
	fs.Func("category", "relay only this category (repeat for several; all by default)", func(c string) error {
		categories = append(categories, c)
		return nil
	})
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	switch {
	case len(args) > 0:
		return usagef("unexpected argument %q", args[0])
	case *lease <= 0:
		return usagef("--lease must be positive")
	}
	b, closeAll, err := openObserved(e, *metricsAddr)
	if err != nil {
		return err
	}
	defer closeAll()
	nc, err := nats.Connect(*url, nats.Name("meowmx relay"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("cannot connect to NATS at %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(meowmxnats.PublishTimeoutDefault))
	if err != nil {
		return err
	}
	cfg := &meowmxnats.Config{
		Stream: *stream, SubjectPrefix: *subjects, Subscription: *name, Categories: categories,
		Partitions: *partitions, BatchSize: *batch, Lease: *lease, Logger: logger(e),
	}
	if b.pg != nil {
		return runRelay(e, b.pg, js, cfg)
	}
	return runRelay(e, b.lite, js, cfg)
}

// runRelay runs a relay until ctx ends or the relay stops by itself.
func runRelay[TTx any](e *env, store *meowmx.Store[TTx], js jetstream.JetStream, cfg *meowmxnats.Config) error {
	ctx := e.ctx
	relay, err := meowmxnats.New(store, js, cfg)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	// The relay runs until Stop; JetStream calls without a deadline get
	// the client's default timeout.
	if err := relay.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "meowmx: relaying to JetStream stream %s, subjects %s.>, at %s\n",
		cfg.Stream, cfg.SubjectPrefix, js.Conn().ConnectedUrlRedacted())
	select {
	case <-ctx.Done():
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := relay.Stop(stopCtx); err != nil {
			return err
		}
		return relay.Err()
	case <-relay.Stopped():
		return relay.Err()
	}
}
