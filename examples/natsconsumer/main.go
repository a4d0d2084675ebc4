// Command natsconsumer reads the events "meowmx relay" publishes to NATS
// JetStream, in another process, through a durable pull consumer: it
// prints each event as a JSON line and acknowledges it, and on a restart
// goes on where it stopped.
//
//	go run ./examples/natsconsumer --nats nats://127.0.0.1:4222 --durable audit
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx/meowmxnats"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "the NATS server")
	stream := flag.String("stream", meowmxnats.StreamDefault, "the JetStream stream the relay writes")
	durable := flag.String("durable", "natsconsumer", "the durable consumer's name")
	filter := flag.String("filter", meowmxnats.SubjectPrefixDefault+".>", "the subjects to read, such as meowmx.order.>")
	idle := flag.Duration("until-idle", 0, "exit once nothing arrived for this long (0: run until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := consume(ctx, os.Stdout, *url, *stream, *durable, *filter, *idle); err != nil {
		log.Fatal(err)
	}
}

func consume(ctx context.Context, w io.Writer, url, stream, durable, filter string, idle time.Duration) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	out := json.NewEncoder(w)
	last := time.Now()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			ev, err := meowmxnats.MsgEvent(m)
			if err != nil {
				return fmt.Errorf("message %s: %w", m.Subject(), err)
			}
			if err := out.Encode(map[string]any{
				"stream": ev.Stream.String(), "version": ev.Version, "position": ev.Position.String(),
				"type": ev.Type, "data": ev.Data, "event_id": ev.ID, "recorded_at": ev.RecordedAt,
			}); err != nil {
				return err
			}
			// Acknowledged once printed: a crash before prints it again.
			if err := m.Ack(); err != nil {
				return err
			}
			last = time.Now()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if idle > 0 && time.Since(last) >= idle {
			return nil
		}
	}
	return nil
}
