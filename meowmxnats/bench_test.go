package meowmxnats_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxnats"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// BenchmarkRelay relays events already stored on PostgreSQL (1 or 100 per
// stream, each stream's appended at once) to a NATS server of its own, against a baseline that publishes
// the same messages straight to JetStream, all pipelined with no order
// kept and nothing read or recorded: what the relay's reads, per-stream
// order and checkpoints cost. Each reports events per second; b.N is the
// number of events.
func BenchmarkRelay(b *testing.B) {
	for _, bc := range []struct {
		side      string
		perStream int
	}{{"baseline", 1}, {"relay", 1}, {"baseline", 100}, {"relay", 100}} {
		side, perStream := bc.side, bc.perStream
		b.Run(fmt.Sprintf("%s/per-stream=%d", side, perStream), func(b *testing.B) {
			n := testdb.NewNATS(b)
			nc, err := nats.Connect(n.URL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(10*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(b)), &meowmx.Config{Schema: testdb.SchemaName(b), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			if err := store.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			data := json.RawMessage(`{"order_id":"o-1042","customer":"c-77","amount_cents":4999,"currency":"EUR","items":3}`)
			batch := make([]meowmx.Event, perStream)
			for i := range batch {
				batch[i] = meowmx.Event{Type: "OrderPlaced", Data: data}
			}
			for s := 0; s*perStream < b.N; s++ {
				if _, err := store.Append(ctx, meowmx.NewStream("order", fmt.Sprint(s)), meowmx.NoStream, batch[:min(perStream, b.N-s*perStream)]...); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			if side == "relay" {
				relay, err := meowmxnats.New(store, js, &meowmxnats.Config{BatchSize: 1000, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				if err := relay.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if err := store.WaitCaughtUp(ctx, meowmxnats.SubscriptionDefault); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = relay.Stop(ctx)
			} else {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: meowmxnats.StreamDefault, Subjects: []string{"meowmx.>"}, Storage: jetstream.FileStorage}); err != nil {
					b.Fatal(err)
				}
				for i := range b.N {
					m := nats.NewMsg(fmt.Sprintf("meowmx.order.%d", i/perStream))
					m.Header.Set(jetstream.MsgIDHeader, fmt.Sprint(i))
					m.Data = data
					if _, err := js.PublishMsgAsync(m); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("no acknowledgements")
				}
				b.StopTimer()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
