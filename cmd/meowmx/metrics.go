package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/meowmx/meowmx/meowmxotel"
)

// metricsServer serves the store's metrics in the Prometheus text format
// at /metrics, for --metrics.
type metricsServer struct {
	obs      *meowmxotel.Observer
	provider *sdkmetric.MeterProvider
	server   *http.Server
	listener net.Listener
	done     chan error
}

// startMetrics listens on addr (host:port) and serves /metrics from an
// OpenTelemetry meter provider read by the Prometheus exporter, with the
// Go runtime's and the process's collectors beside it. The observer it
// returns goes into the store's config; watch then adds the store's gauges.
func startMetrics(e *env, addr string) (*metricsServer, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usagef("--metrics %q: want host:port, such as 127.0.0.1:9464", addr)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := meowmxotel.New(&meowmxotel.Config{MeterProvider: provider})
	if err != nil {
		_ = provider.Shutdown(context.Background())
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = provider.Shutdown(context.Background())
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		Timeout: scrapeTimeout,
	}))
	m := &metricsServer{
		obs: obs, provider: provider, listener: ln, done: make(chan error, 1),
		server: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      scrapeTimeout + 5*time.Second,
		},
	}
	go func() { m.done <- m.server.Serve(ln) }()
	fmt.Fprintf(e.stderr, "meowmx: metrics at http://%s/metrics\n", ln.Addr())
	return m, nil
}

// watch registers the gauges read from store (lag, parked events, horizon)
// and returns the function that unregisters them.
func (m *metricsServer) watch(store meowmxotel.Source) (func(), error) {
	reg, err := m.obs.ObserveStore(store)
	if err != nil {
		return nil, err
	}
	return func() { _ = reg.Unregister() }, nil
}

// stop ends the server, letting a scrape in progress finish (it is
// bounded by the handler's timeout); call it before closing the store.
func (m *metricsServer) stop(stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout+5*time.Second)
	defer cancel()
	_ = m.server.Shutdown(ctx)
	if err := <-m.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "meowmx: metrics server: %v\n", err)
	}
	_ = m.provider.Shutdown(ctx)
}

// scrapeTimeout bounds one scrape: the store's gauges have
// meowmxotel.ObserveTimeout.
const scrapeTimeout = meowmxotel.ObserveTimeout + 5*time.Second

// openObserved opens the migrated store, observed and served at
// /metrics on addr when addr is not empty, and returns the function that
// closes both: the metrics server first, so that no scrape reads a closed
// store.
func openObserved(e *env, addr string) (*backend, func(), error) {
	if addr == "" {
		b, err := openMigrated(e)
		if err != nil {
			return nil, nil, err
		}
		return b, b.close, nil
	}
	metrics, err := startMetrics(e, addr)
	if err != nil {
		return nil, nil, err
	}
	e.observer = metrics.obs
	b, err := openMigrated(e)
	if err != nil {
		metrics.stop(e.stderr)
		return nil, nil, err
	}
	unwatch, err := metrics.watch(b.api)
	if err != nil {
		metrics.stop(e.stderr)
		b.close()
		return nil, nil, err
	}
	return b, func() {
		unwatch()
		metrics.stop(e.stderr)
		b.close()
	}, nil
}
