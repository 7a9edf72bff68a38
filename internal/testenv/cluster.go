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

// RedisCluster starts a Redis Cluster of n masters (no replicas) on free
// loopback ports, each its own redis-server that keeps nothing on disk,
// splits the 16384 slots between them, and returns a cluster client of
// it once every node agrees the cluster is up. Everything stops when the
// test ends. Without redis-server the test fails with how to install it.
func RedisCluster(t testing.TB, n int) *redis.ClusterClient {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("this test starts a Redis Cluster of its own: install Redis (scripts/ensure-services.sh redis)")
	}
	dir := t.TempDir()
	addrs := make([]string, n)
	nodes := make([]*redis.Client, n)
	for i := range n {
		port := FreePort(t)
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--save", "", "--appendonly", "no")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		nodes[i] = redis.NewClient(&redis.Options{Addr: addrs[i]})
		t.Cleanup(func() { nodes[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Eventually(t, 10*time.Second, func() error {
		for _, c := range nodes {
			if err := c.Ping(ctx).Err(); err != nil {
				return err
			}
		}
		return nil
	})
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
