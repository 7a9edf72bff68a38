package persist_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/localkafka"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/persist"
)

// BenchmarkOrdersConsumer measures how fast the orders consumer turns hold
// events already in Kafka into order rows: b.N "created" events are
// produced first, then the timer runs while one consumer writes them all
// (and commits its offsets) to PostgreSQL.
//
//	go test -run '^$' -bench OrdersConsumer -benchtime 20000x ./persist
func BenchmarkOrdersConsumer(b *testing.B) {
	ctx := context.Background()
	db, err := persist.Open(ctx, testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	broker := testenv.Kafka(b, localkafka.Options{})
	kcfg := persist.KafkaConfig{Brokers: broker.Addrs(), Topic: "bench", Partitions: 12}
	if err := persist.EnsureTopic(ctx, kcfg); err != nil {
		b.Fatal(err)
	}
	pub := persist.NewPublisher(kcfg)
	defer pub.Close()
	now := time.Now().UTC()
	batch := make([]engine.Event, 0, 1000)
	for i := range b.N {
		batch = append(batch, event("bench", fmt.Sprintf("st%d", i%50), fmt.Sprintf("bench.h%d", i), engine.HoldHeld, now))
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := pub.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	b.ResetTimer()
	start := time.Now()
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		persist.Consume(cctx, persist.ConsumerConfig{KafkaConfig: kcfg, Group: "orders"}, db.ApplyEvents)
	})
	for {
		lag, err := persist.GroupLag(ctx, kcfg, "orders")
		if err == nil && lag == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	wg.Wait()
	orders, err := db.SaleOrders(ctx, "bench")
	if err != nil || len(orders) != b.N {
		b.Fatalf("%d orders written, want %d (%v)", len(orders), b.N, err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
}
