package reservation_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	eng, err := engine.New(engine.Config{Ledger: ledger, Clock: testenv.NewClock(t0), Coalesce: &engine.CoalesceConfig{
		OnCall: func(n int) {
			for m := most.Load(); int64(n) > m && !most.CompareAndSwap(m, int64(n)); m = most.Load() {
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stores := lineStores("cl-", 2)
	if err := eng.UpsertStores(ctx, stores); err != nil {
		t.Fatal(err)
	}
	var sales []engine.Sale
	nodes := map[string]bool{}
	for i := range 24 {
		s, err := eng.CreateSale(ctx, engine.Sale{
			ID: fmt.Sprintf("cl-%02d", i), Name: "cluster sale", StartsAt: t0, EndsAt: t0.Add(time.Hour),
			PerUserLimit: 1, HoldTTLSeconds: 60, MaxDistanceKm: 50,
			Allocations: map[string]int{stores[0].ID: 1 + i%3, stores[1].ID: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		sales = append(sales, s)
		node, err := rdb.MasterForKey(ctx, reservation.OutboxKey(s.ID))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Fatalf("24 sales all live on one node of three: %v", nodes)
	}
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() }); err != nil {
		t.Fatal(err)
	}

	const workers = 480
	type result struct {
		sale        string
		res, replay engine.Reservation
		err, rerr   error
	}
	results := make([]result, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			r := &results[i]
			sale := sales[i%len(sales)]
			r.sale = sale.ID
			req := reserveAt(52.5, 13.4, fmt.Sprintf("u%03d", i), "k")
			req.SaleID = sale.ID
			<-start
			r.res, r.err = eng.Reserve(ctx, req)
			r.replay, r.rerr = eng.Reserve(ctx, req)
		})
	}
	close(start)
	wg.Wait()
	sold := map[string]int{}
	for _, r := range results {
		switch {
		case r.err != nil:
			if !errors.Is(r.err, engine.ErrSoldOut) || !errors.Is(r.rerr, engine.ErrSoldOut) {
				t.Fatalf("%s: %v, then %v", r.sale, r.err, r.rerr)
			}
		case r.res.Hold.SaleID != r.sale || r.res.Replayed:
			t.Fatalf("%s: hold %+v", r.sale, r.res)
		case r.rerr != nil || !r.replay.Replayed || r.replay.Hold.ID != r.res.Hold.ID:
			t.Fatalf("%s: replay %+v, %v of hold %s", r.sale, r.replay, r.rerr, r.res.Hold.ID)
		default:
			sold[r.sale]++
		}
	}
	for i, sale := range sales {
		want := 1 + i%3 + 2
		st, err := ledger.Stock(ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if bad := st.Check(); len(bad) > 0 || sold[sale.ID] != want || st.Held != want || st.Remaining != 0 {
			t.Fatalf("sale %s: shoppers got %d holds, ledger %+v %v; want %d", sale.ID, sold[sale.ID], st, bad, want)
		}
		msgs, err := rdb.XRange(ctx, reservation.OutboxKey(sale.ID), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		events, err := reservation.OutboxEvents(ctx, rdb, sale.ID, msgs)
		if err != nil || len(events) != want {
			t.Fatalf("sale %s: %d events for %d holds (%v)", sale.ID, len(events), want, err)
		}
	}
	if most.Load() < 2 {
		t.Fatalf("no round trip carried more than %d sale", most.Load())
	}
}
