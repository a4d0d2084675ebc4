package testdb

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProcessCPU is the user and system CPU time of process pid, in
// nanoseconds (from /proc: Linux only), for benchmarks that report CPU per
// operation, steadier than wall time on a shared machine.
func ProcessCPU(tb testing.TB, pid int) int64 {
	tb.Helper()
	n, err := processCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func processCPU(pid int) (int64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return (utime + stime) * int64(time.Second) / 100, nil // clock ticks of 1/100 s
}

// ServerCPU is the CPU time of every postgres process of the machine, in
// nanoseconds; a process that ends while it is read counts for nothing.
func ServerCPU(tb testing.TB) int64 {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || !strings.HasPrefix(string(comm), "postgres") {
			continue
		}
		if n, err := processCPU(pid); err == nil {
			total += n
		}
	}
	return total
}
