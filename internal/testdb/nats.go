package testdb

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// NATS is a NATS server with JetStream of a test's own: the nats-server
// binary on a free port of 127.0.0.1, its store in a temporary directory,
// stopped when the test ends.
type NATS struct {
	Port  int
	dir   string
	bin   string
	tb    testing.TB
	cmd   *exec.Cmd
	ended chan struct{}
}

// URL is the server's address for nats.Connect.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// NewNATS starts a NATS server. Where nats-server is not installed the test
// is skipped, except under CI=true, where it fails.
func NewNATS(tb testing.TB) *NATS {
	tb.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr == nil {
			bin, err = "/usr/sbin/nats-server", nil
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("nats-server is required under CI=true: %v", err)
		}
		tb.Skipf("nats-server is not installed: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	n := &NATS{Port: port, dir: tb.TempDir(), bin: bin, tb: tb}
	n.Start()
	tb.Cleanup(n.Stop)
	return n
}

// Start starts the server (again, on the same port and store) and waits
// until it accepts connections.
func (n *NATS) Start() {
	n.tb.Helper()
	n.cmd = exec.Command(n.bin, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(n.Port), "-sd", n.dir)
	if err := n.cmd.Start(); err != nil {
		n.tb.Fatalf("start nats-server: %v", err)
	}
	ended := make(chan struct{})
	n.ended = ended
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(ended) }(n.cmd)
	deadline := time.Now().Add(StallTimeout())
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-ended:
			n.tb.Fatalf("nats-server exited at start")
		default:
		}
		if time.Now().After(deadline) {
			n.tb.Fatalf("nats-server does not accept connections: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after a while) and waits
// for it to end.
func (n *NATS) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.ended:
	case <-time.After(StallTimeout()):
		_ = n.cmd.Process.Kill()
		<-n.ended
	}
	n.cmd = nil
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it
// to end; Start brings it back on the same store.
func (n *NATS) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.ended
	n.cmd = nil
}
