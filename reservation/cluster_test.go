package reservation_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

// TestClusterManySales runs shoppers of many sales at once on a Redis
// Cluster of three masters, whose scripts were flushed (as after a
// failover): the coalescer's round trips carry several sales, which the
// cluster client splits between the nodes that own them, NOSCRIPT is
// answered by loading the script on the node that lacks it, and every
// sale sells exactly its stock, once per shopper, with every replay
// finding its hold.
func TestClusterManySales(t *testing.T) {
	rdb := testenv.RedisCluster(t, 3)
	ctx := context.Background()
	ledger := reservation.New(rdb, reservation.WithNamespace(testenv.ID("cluster-")))
	if err := ledger.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var most atomic.Int64
	clock := testenv.NewClock(t0)
	eng, err := engine.New(engine.Config{Ledger: ledger, Clock: clock, Coalesce: &engine.CoalesceConfig{OnCall: keepMost(&most)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, rdb: rdb, ledger: ledger, eng: eng, clock: clock}
	sales := testConcurrentReserveManySales(t, f)
	nodes := map[string]bool{}
	for _, s := range sales {
		node, err := rdb.MasterForKey(ctx, reservation.OutboxKey(s.ID))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("the sales all lived on one node of three: %v", nodes)
	}
	if most.Load() < 2 {
		t.Fatalf("no round trip carried more than %d sale", most.Load())
	}
}
