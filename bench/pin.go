package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// parseCPUs reads a CPU list as taskset and /proc write it: "1", "2-3",
// "0,2-3".
func parseCPUs(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return set, fmt.Errorf("-redis-cpus: %q is not a CPU list such as 1, 2-3 or 0,2-3", s)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// cpuList writes a set as a list of CPUs, for the report.
func cpuList(set unix.CPUSet) string {
	var out []string
	for c := range 1024 {
		if set.IsSet(c) {
			out = append(out, strconv.Itoa(c))
		}
	}
	return strings.Join(out, ",")
}

// pinning is what pin changed: every thread's CPU mask as it was.
type pinning struct {
	self  unix.CPUSet // where this process now runs
	masks map[int]unix.CPUSet
	procs int // GOMAXPROCS before
}

// pin gives the Redis server behind rdb the CPUs of redisCPUs and this
// process the other CPUs it may use, so that the load generator and the
// code under test do not compete with Redis: Redis on cores of its own, as
// in production. Redis must run on this machine (its threads are found by
// the process id INFO reports). The returned function puts every mask and
// GOMAXPROCS back.
func pin(ctx context.Context, rdb *redis.Client, redisURL string, redisCPUs unix.CPUSet) (*pinning, func(), error) {
	pid, err := localRedisPID(ctx, rdb, redisURL)
	if err != nil {
		return nil, nil, err
	}
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		return nil, nil, fmt.Errorf("-redis-cpus: reading this process's CPUs: %w", err)
	}
	p := &pinning{masks: map[int]unix.CPUSet{}, procs: runtime.GOMAXPROCS(0)}
	for c := range 1024 {
		if mine.IsSet(c) && !redisCPUs.IsSet(c) {
			p.self.Set(c)
		}
		if redisCPUs.IsSet(c) && !mine.IsSet(c) {
			return nil, nil, fmt.Errorf("-redis-cpus: CPU %d is not one this process may use (%s)", c, cpuList(mine))
		}
	}
	if p.self.Count() == 0 {
		return nil, nil, fmt.Errorf("-redis-cpus %s leaves no CPU for the bench (it may use %s)", cpuList(redisCPUs), cpuList(mine))
	}
	// A Redis that may not use every CPU this process may is pinned
	// already, by someone or by a run that could not put it back: the
	// masks this run would put back would keep it so.
	var theirs unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &theirs); err != nil {
		return nil, nil, fmt.Errorf("-redis-cpus: reading Redis's CPUs (pid %d): %w", pid, err)
	}
	for c := range 1024 {
		if mine.IsSet(c) && !theirs.IsSet(c) {
			return nil, nil, fmt.Errorf("-redis-cpus: Redis (pid %d) already runs on CPU %s only, not on every CPU this process may use (%s); "+
				"if an earlier run left it so, put it back (taskset -apc %s %d) and run again", pid, cpuList(theirs), cpuList(mine), cpuList(mine), pid)
		}
	}
	restore := func() {
		// Threads started meanwhile took their starter's mask: they get
		// their process's first thread's, as it was.
		for _, proc := range []int{pid, os.Getpid()} {
			tids, _ := threads(proc)
			for _, tid := range tids {
				m, ok := p.masks[tid]
				if !ok {
					m, ok = p.masks[proc]
				}
				if !ok {
					continue
				}
				if err := unix.SchedSetaffinity(tid, &m); err != nil && !errors.Is(err, unix.ESRCH) {
					fmt.Fprintf(os.Stderr, "bench: putting back the CPUs of thread %d of process %d: %v (taskset -apc %s %d does it)\n", tid, proc, err, cpuList(m), proc)
				}
			}
		}
		if os.Getenv("GOMAXPROCS") == "" {
			runtime.SetDefaultGOMAXPROCS() // and let the runtime follow the machine again
		} else {
			runtime.GOMAXPROCS(p.procs)
		}
	}
	// Redis first: a failure there (another user's Redis) changes nothing
	// of this process.
	if err := setThreads(pid, redisCPUs, p.masks); err != nil {
		restore()
		return nil, nil, fmt.Errorf("-redis-cpus: pinning Redis (pid %d): %w", pid, err)
	}
	if err := setThreads(os.Getpid(), p.self, p.masks); err != nil {
		restore()
		return nil, nil, fmt.Errorf("-redis-cpus: pinning the bench: %w", err)
	}
	runtime.GOMAXPROCS(p.self.Count())
	return p, restore, nil
}

// setThreads gives every thread of process pid the CPUs of set, keeping
// each one's mask as it was in saved (first time seen only).
func setThreads(pid int, set unix.CPUSet, saved map[int]unix.CPUSet) error {
	tids, err := threads(pid)
	if err != nil {
		return err
	}
	for _, tid := range tids {
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &old); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue // the thread ended
			}
			return err
		}
		if _, ok := saved[tid]; !ok {
			saved[tid] = old
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// threads lists the thread ids of process pid.
func threads(pid int) ([]int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("no threads under /proc/%d/task", pid)
	}
	tids := make([]int, 0, len(tasks))
	for _, t := range tasks {
		if tid, err := strconv.Atoi(filepath.Base(t)); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// localRedisPID is the process id of the Redis server behind rdb, when it
// runs on this machine: its URL names a loopback address and the process
// INFO names is a redis-server listening on that port.
func localRedisPID(ctx context.Context, rdb *redis.Client, redisURL string) (int, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		return 0, fmt.Errorf("-redis-cpus: %w", err)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0, fmt.Errorf("-redis-cpus needs a Redis on this machine (a loopback address), not %s", host)
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0, fmt.Errorf("-redis-cpus: INFO server: %w", err)
	}
	pid, port := infoField(info, "process_id"), infoField(info, "tcp_port")
	n, err := strconv.Atoi(pid)
	if err != nil {
		return 0, fmt.Errorf("-redis-cpus: Redis reported no process_id")
	}
	if want := u.Port(); want != "" && want != port {
		return 0, fmt.Errorf("-redis-cpus: Redis says it listens on %s, the URL names %s (a proxy in between?)", port, want)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "redis-server") {
		return 0, fmt.Errorf("-redis-cpus: process %d is not a redis-server on this machine", n)
	}
	// A Redis in a container reports its own namespace's process id,
	// which may name another process here: the process must hold the
	// listening socket.
	if ok, err := listensOn(n, port); err != nil {
		return 0, fmt.Errorf("-redis-cpus: checking that process %d listens on port %s: %w", n, port, err)
	} else if !ok {
		return 0, fmt.Errorf("-redis-cpus: process %d does not hold a socket listening on port %s (a Redis in a container?)", n, port)
	}
	return n, nil
}

// listensOn reports whether process pid holds a TCP socket listening on
// port: one of its descriptors is a socket whose inode /proc's tables
// list as listening there.
func listensOn(pid int, port string) (bool, error) {
	p, err := strconv.Atoi(port)
	if err != nil {
		return false, fmt.Errorf("port %q", port)
	}
	want := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			// sl local_address rem_address st ... inode; 0A is LISTEN.
			if len(f) > 9 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			return true, nil
		}
	}
	return false, nil
}

// infoField is the value of field k in an INFO answer.
func infoField(info, k string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), k+":"); ok {
			return v
		}
	}
	return ""
}
