package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/meowmx/meowmx/meowmxhttp"
)

// cmdServe runs "meowmx serve": the store's HTTP API until interrupted.
func cmdServe(e *env) error {
	fs := newFlagSet(e, "serve", `Usage: meowmx serve [--listen HOST:PORT] [--token-file FILE] [--cors ORIGIN ...] [--metrics HOST:PORT]

Serves the store's HTTP API (see "meowmx serve" in the README): appends,
conditional appends, reads of streams, categories, the log and queries, live
tails over Server-Sent Events, subscriptions, /healthz and /readyz.

It listens on 127.0.0.1:8080 by default. Listening on an address other than
loopback requires bearer tokens: --token-file FILE, one token per line,
"TOKEN" for full access or "TOKEN read-only" for reads only (blank lines
and lines starting with # are skipped), and/or $MEOWMX_TOKEN, one
full-access token. Tokens are at least 16 characters. SIGINT or SIGTERM
stops it gracefully: live tails end (clients resume with Last-Event-ID),
other requests finish within 10 s.

Examples:
  meowmx serve
  meowmx serve --listen 0.0.0.0:8080 --token-file /etc/meowmx/tokens
  meowmx serve --cors https://console.example --metrics 127.0.0.1:9464
  curl -s localhost:8080/streams/order/1001 -H 'Content-Type: application/json' -d '{"events":[{"type":"Placed","data":{}}]}'`)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	tokenFile := fs.String("token-file", "", "file of bearer tokens (see above)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)")
	maxBody := fs.Int64("max-body", meowmxhttp.MaxBodyBytesDefault, "largest request body in bytes")
	var origins []string
	fs.Func("cors", "allow browsers on this origin to call the API (repeat; * for any)", func(o string) error {
		origins = append(origins, o)
		return nil
	})
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen %q: want HOST:PORT, such as 127.0.0.1:8080", *listen)
	}
	if *maxBody < 1 {
		return usagef("--max-body must be positive")
	}
	tokens, err := loadTokens(*tokenFile, os.Getenv("MEOWMX_TOKEN"))
	if err != nil {
		return err
	}
	if len(tokens) == 0 && !loopback(host) {
		return usagef("listening on %s, beyond loopback, requires tokens: --token-file FILE or $MEOWMX_TOKEN", *listen)
	}
	b, closeAll, err := openObserved(e, *metricsAddr)
	if err != nil {
		return err
	}
	defer closeAll()
	cfg := &meowmxhttp.Config{Tokens: tokens, CORSOrigins: origins, MaxBodyBytes: *maxBody, Logger: logger(e)}
	var handler interface {
		http.Handler
		Close()
	}
	if b.pg != nil {
		handler, err = meowmxhttp.New(b.pg, cfg)
	} else {
		handler, err = meowmxhttp.New(b.lite, cfg)
	}
	if err != nil {
		return &usageError{msg: strings.TrimPrefix(err.Error(), "meowmxhttp: ")}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	srv.RegisterOnShutdown(handler.Close)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(e.stderr, "meowmx: serving %s at http://%s\n", b.label, ln.Addr())
	select {
	case err := <-served:
		return err
	case <-e.ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping the server: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadTokens reads the tokens of file (if any) and env (if set).
func loadTokens(file, env string) ([]meowmxhttp.Token, error) {
	var tokens []meowmxhttp.Token
	if env != "" {
		tokens = append(tokens, meowmxhttp.Token{Value: strings.TrimSpace(env)})
	}
	if file == "" {
		return tokens, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, usagef("--token-file: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1:
			tokens = append(tokens, meowmxhttp.Token{Value: fields[0]})
		case len(fields) == 2 && fields[1] == "read-only":
			tokens = append(tokens, meowmxhttp.Token{Value: fields[0], ReadOnly: true})
		default:
			return nil, usagef("--token-file %s line %d: want TOKEN or TOKEN read-only", file, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("--token-file: %v", err)
	}
	return tokens, nil
}
