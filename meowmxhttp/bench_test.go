package meowmxhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxhttp"
	"github.com/meowmx/meowmx/meowmxpgxv5"
)

// BenchmarkHTTP measures appends and stream reads through the HTTP API
// against the same calls on the library, on PostgreSQL, 8 goroutines each
// (one HTTP client connection per goroutine, kept alive): what the API's
// JSON and HTTP cost, the client reading each response whole without
// decoding it. Run the sides in turn:
//
//	go test -run XXX -bench BenchmarkHTTP -benchtime 5s -count 3 ./meowmxhttp
func BenchmarkHTTP(b *testing.B) {
	ctx := context.Background()
	store, err := meowmx.New(meowmxpgxv5.New(testdb.Pool(b)), &meowmx.Config{Schema: testdb.SchemaName(b), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	h, err := meowmxhttp.New(store, &meowmxhttp.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	data := json.RawMessage(`{"order_id":"o-1042","customer":"c-77","amount_cents":4999,"currency":"EUR","items":3}`)
	body := `{"events":[{"type":"OrderPlaced","data":` + string(data) + `}]}`
	hundred := make([]meowmx.Event, 100)
	for i := range hundred {
		hundred[i] = meowmx.Event{Type: "OrderPlaced", Data: data}
	}
	if _, err := store.Append(ctx, meowmx.NewStream("read", "1"), meowmx.NoStream, hundred...); err != nil {
		b.Fatal(err)
	}
	var streams atomic.Int64
	post := func(path, body string) error {
		resp, err := client.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST %s: %d", path, resp.StatusCode)
		}
		return nil
	}
	get := func(path string) error {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// The body is read whole and its events counted, not decoded: the
		// client's decoding, on the same two CPUs, is not the server's cost.
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if n := bytes.Count(body, []byte(`"event_id":`)); resp.StatusCode != http.StatusOK || n != 100 {
			return fmt.Errorf("GET %s: %d, %d events", path, resp.StatusCode, n)
		}
		return nil
	}
	for _, bc := range []struct {
		name string
		op   func() error
	}{
		{"append-1/library", func() error {
			_, err := store.Append(ctx, meowmx.NewStream("bench", fmt.Sprint(streams.Add(1))), meowmx.Any, meowmx.Event{Type: "OrderPlaced", Data: data})
			return err
		}},
		{"append-1/http", func() error { return post(fmt.Sprintf("/streams/bench/%d", streams.Add(1)), body) }},
		{"read-100/library", func() error {
			events, err := store.ReadStream(ctx, meowmx.NewStream("read", "1"), nil)
			if err == nil && len(events) != 100 {
				err = fmt.Errorf("%d events", len(events))
			}
			return err
		}},
		{"read-100/http", func() error { return get("/streams/read/1") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(4) // 8 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
