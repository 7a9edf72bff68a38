package testenv

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/reservation"
)

// StartRedis starts a redis-server on loopback port with dir as its
// working directory (where AOF or RDB files go, when extra asks for them)
// and extra arguments. It neither waits for the server to answer nor stops
// it. Without redis-server the test fails with how to install it.
func StartRedis(t testing.TB, port int, dir string, extra ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("this test starts a Redis server of its own: install Redis (scripts/ensure-services.sh redis)")
	}
	cmd := exec.Command(bin, append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir}, extra...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// RedisServer starts a redis-server of the test's own on a free loopback
// port, keeping nothing on disk, with extra arguments (such as
// "--cluster-enabled", "yes"), and returns a client of it once it answers.
// It stops when the test ends.
func RedisServer(t testing.TB, extra ...string) *redis.Client {
	t.Helper()
	port := FreePort(t)
	cmd := StartRedis(t, port, t.TempDir(), append([]string{"--save", "", "--appendonly", "no"}, extra...)...)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	t.Cleanup(func() { c.Close() })
	Eventually(t, 10*time.Second, func() error { return c.Ping(context.Background()).Err() })
	return c
}

// RedisCluster starts a Redis Cluster of n masters (no replicas), each a
// RedisServer, splits the 16384 slots between them, and returns a cluster
// client of it once every node agrees the cluster is up.
func RedisCluster(t testing.TB, n int) *redis.ClusterClient {
	t.Helper()
	dir := t.TempDir()
	addrs := make([]string, n)
	nodes := make([]*redis.Client, n)
	for i := range n {
		nodes[i] = RedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)))
		addrs[i] = nodes[i].Options().Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const slots = 16384
	for i, c := range nodes {
		from, to := i*slots/n, (i+1)*slots/n-1
		if err := c.ClusterAddSlotsRange(ctx, from, to).Err(); err != nil {
			t.Fatalf("cluster addslotsrange on %s: %v", addrs[i], err)
		}
		if i > 0 {
			host, port, _ := strings.Cut(addrs[i], ":")
			if err := nodes[0].ClusterMeet(ctx, host, port).Err(); err != nil {
				t.Fatalf("cluster meet %s: %v", addrs[i], err)
			}
		}
	}
	Eventually(t, 20*time.Second, func() error {
		for i, c := range nodes {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				return fmt.Errorf("node %s: cluster not up yet", addrs[i])
			}
		}
		return nil
	})
	opt := &redis.ClusterOptions{Addrs: addrs, PoolSize: 64}
	reservation.TuneCluster(opt)
	rdb := redis.NewClusterClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
