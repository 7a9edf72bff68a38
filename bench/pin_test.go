package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/flashsale/flashsale/internal/testenv"
)

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "2-3": "2,3", "0,2-3": "0,2,3", " 1 , 3 ": "1,3"} {
		set, err := parseCPUs(in)
		if err != nil || cpuList(set) != want {
			t.Errorf("parseCPUs(%q) = %s, %v; want %s", in, cpuList(set), err, want)
		}
	}
	for _, in := range []string{"", "a", "3-1", "-1", "1-", "1,,2", "4096"} {
		if _, err := parseCPUs(in); err == nil {
			t.Errorf("parseCPUs(%q) took it", in)
		}
	}
}

// threadCPUs is the CPU list of every thread of process pid, and how many
// threads have it.
func threadCPUs(t *testing.T, pid int) map[string]int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	out := map[string]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(task + "/status")
		if err != nil {
			continue // the thread ended
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				out[strings.TrimSpace(v)]++
			}
		}
	}
	return out
}

// cpusForPinning returns the CPUs this process may use and a set of the
// last of them, for Redis; the test fails where it may use only one.
func cpusForPinning(t *testing.T) (mine, last unix.CPUSet) {
	t.Helper()
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	if mine.Count() < 2 {
		t.Fatalf("this process may use %d CPU; the pinning tests need two (run them without taskset to one CPU)", mine.Count())
	}
	for c := range 1024 {
		if mine.IsSet(c) {
			last = unix.CPUSet{}
			last.Set(c)
		}
	}
	return mine, last
}

// ownRedis starts a Redis of the test's own and returns a client, its
// URL and its process id.
func ownRedis(t *testing.T) (*redis.Client, string, int) {
	t.Helper()
	rdb := testenv.RedisServer(t)
	url := "redis://" + rdb.Options().Addr
	pid, err := localRedisPID(context.Background(), rdb, url)
	if err != nil {
		t.Fatal(err)
	}
	return rdb, url, pid
}

// TestPinSeparatesRedisAndPutsBack pins a Redis server of the test's own
// to the last CPU this process may use and the process to the others, and
// checks every thread of both, then that everything is as it was.
func TestPinSeparatesRedisAndPutsBack(t *testing.T) {
	mine, redisSet := cpusForPinning(t)
	rdb, url, pid := ownRedis(t)
	ctx := context.Background()
	var rest unix.CPUSet
	for c := range 1024 {
		if mine.IsSet(c) && !redisSet.IsSet(c) {
			rest.Set(c)
		}
	}
	redisBefore, selfBefore, procs := threadCPUs(t, pid), threadCPUs(t, os.Getpid()), runtime.GOMAXPROCS(0)

	p, restore, err := pin(ctx, rdb, url, redisSet)
	if err != nil {
		t.Fatal(err)
	}
	if got := threadCPUs(t, pid); len(got) != 1 || got[cpuList(redisSet)] == 0 {
		t.Errorf("Redis's threads run on %v, want all on %s", got, cpuList(redisSet))
	}
	for list, n := range threadCPUs(t, os.Getpid()) {
		set, err := parseCPUs(list) // /proc writes ranges: compare sets
		if err != nil || set != rest {
			t.Errorf("%d of this process's threads run on %s, want %s", n, list, cpuList(rest))
		}
	}
	if p.self != rest || runtime.GOMAXPROCS(0) != rest.Count() {
		t.Errorf("pinning says self %s, GOMAXPROCS %d; want %s, %d", cpuList(p.self), runtime.GOMAXPROCS(0), cpuList(rest), rest.Count())
	}
	// Redis still answers, and does work, on its CPU.
	if err := rdb.Set(ctx, "pinned", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	restore()
	if got := threadCPUs(t, pid); !sameLists(got, redisBefore) {
		t.Errorf("after restore Redis's threads run on %v, want %v", got, redisBefore)
	}
	for list := range threadCPUs(t, os.Getpid()) {
		if selfBefore[list] == 0 {
			t.Errorf("after restore a thread of this process runs on %s; before: %v", list, selfBefore)
		}
	}
	if runtime.GOMAXPROCS(0) != procs {
		t.Errorf("GOMAXPROCS %d after restore, want %d", runtime.GOMAXPROCS(0), procs)
	}
}

func TestPinRefuses(t *testing.T) {
	rdb := testenv.RedisServer(t)
	ctx := context.Background()
	addr := rdb.Options().Addr
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	var beyond unix.CPUSet
	beyond.Set(1023)
	for _, c := range []struct {
		url  string
		set  unix.CPUSet
		want string
	}{
		{"redis://10.1.2.3:6379", mine, "loopback"},
		{"redis://127.0.0.1:1", mine, "listens on"},
		{"redis://" + addr, mine, "leaves no CPU"},
		{"redis://" + addr, beyond, "not one this process may use"},
	} {
		before := threadCPUs(t, os.Getpid())
		_, _, err := pin(ctx, rdb, c.url, c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pin(%s, %s) = %v, want an error saying %q", c.url, cpuList(c.set), err, c.want)
		}
		if after := threadCPUs(t, os.Getpid()); !sameLists(after, before) {
			t.Errorf("a refused pin changed this process's CPUs: %v -> %v", before, after)
		}
	}
}

// TestPinRefusesAPinnedRedis: a Redis already narrower than this process's
// CPUs (an earlier run killed before it could put it back) is refused,
// since putting back what this run found would keep it pinned.
func TestPinRefusesAPinnedRedis(t *testing.T) {
	_, last := cpusForPinning(t)
	rdb, url, pid := ownRedis(t)
	ctx := context.Background()
	saved := map[int]unix.CPUSet{}
	if err := setThreads(pid, last, saved); err != nil {
		t.Fatal(err)
	}
	before := threadCPUs(t, pid)
	if _, _, err := pin(ctx, rdb, url, last); err == nil || !strings.Contains(err.Error(), "already runs on CPU "+cpuList(last)) {
		t.Errorf("pin of a pinned Redis: %v, want a refusal that says where it runs", err)
	}
	if after := threadCPUs(t, pid); !sameLists(after, before) {
		t.Errorf("a refused pin changed Redis's CPUs: %v -> %v", before, after)
	}
}

// TestHarnessPinned runs the HTTP scenarios with a Redis of the test's own
// pinned to a CPU of its own: the report says where each ran and gives
// this process's CPU ratio, and Redis is put back after the run.
func TestHarnessPinned(t *testing.T) {
	_, set := cpusForPinning(t)
	_, url, pid := ownRedis(t)
	before := threadCPUs(t, pid)
	o := options{redisURL: url, workers: 4, rounds: 1, duration: 100 * time.Millisecond, only: "d", redisCPUs: &set}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"Redis pinned to CPU " + cpuList(set), "(d) CPU per request in this process, no-op / reserve", "(d) reserve endpoint / (d) no-op handler"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if after := threadCPUs(t, pid); !sameLists(after, before) {
		t.Errorf("Redis's threads run on %v after the run, want %v", after, before)
	}
}

// sameLists reports whether two threadCPUs answers name the same CPU lists
// (threads may have started or ended between them).
func sameLists(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if b[k] == 0 {
			return false
		}
	}
	return true
}

// TestListensOn: a process is known by the socket it listens on.
func TestListensOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if ok, err := listensOn(os.Getpid(), port); err != nil || !ok {
		t.Errorf("listensOn(self, %s) = %v, %v; this process listens there", port, ok, err)
	}
	_, _, pid := ownRedis(t)
	if ok, err := listensOn(pid, port); err != nil || ok {
		t.Errorf("listensOn(redis, %s) = %v, %v; Redis does not listen there", port, ok, err)
	}
}
