package persist_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/localkafka"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/persist"
	"github.com/flashsale/flashsale/reservation"
)

// killingPublisher publishes to Kafka, then "kills" its relay once: it
// cancels the relay's context after Kafka acknowledged the batch and before
// the relay could acknowledge the outbox entries.
type killingPublisher struct {
	engine.Publisher
	kill      context.CancelFunc
	killed    atomic.Bool
	published atomic.Int64
}

func (p *killingPublisher) Publish(ctx context.Context, events []engine.Event) error {
	if err := p.Publisher.Publish(ctx, events); err != nil {
		return err
	}
	p.published.Add(int64(len(events)))
	if p.kill != nil && p.killed.CompareAndSwap(false, true) {
		p.kill()
		return errors.New("relay killed after Kafka acknowledged")
	}
	return nil
}

// TestRelayKilledMidBatch kills a relay between Kafka's acknowledgement and
// its own, restarts it, kills it again and lets another relay claim its
// pending entries: every hold still becomes exactly one order, and the
// audit is clean.
func TestRelayKilledMidBatch(t *testing.T) {
	ctx := context.Background()
	rdb, ledger := testenv.Ledger(t, "relay-ns-")
	eng, err := engine.New(engine.Config{Ledger: ledger, Clock: engine.SystemClock{}})
	if err != nil {
		t.Fatal(err)
	}
	stores := []engine.Store{
		{ID: testenv.ID("ra-"), Name: "A", Lat: 52.50, Lon: 13.40},
		{ID: testenv.ID("rb-"), Name: "B", Lat: 52.51, Lon: 13.41},
		{ID: testenv.ID("rc-"), Name: "C", Lat: 52.52, Lon: 13.42},
	}
	if err := eng.UpsertStores(ctx, stores); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sale, err := eng.CreateSale(ctx, engine.Sale{
		ID: testenv.ID("relay-sale-"), Name: "relay", StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour),
		PerUserLimit: 1, HoldTTLSeconds: 600, MaxDistanceKm: 50,
		Allocations: map[string]int{stores[0].ID: 30, stores[1].ID: 20, stores[2].ID: 50},
	})
	if err != nil {
		t.Fatal(err)
	}

	var users atomic.Int64
	burst := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				u := fmt.Sprintf("u%d", users.Add(1))
				res, err := eng.Reserve(ctx, engine.ReserveRequest{SaleID: sale.ID, UserID: u, HasLocation: true, Lat: 52.5, Lon: 13.4})
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				if users.Load()%4 == 0 {
					eng.Cancel(ctx, res.Hold.ID, engine.Actor{UserID: u})
				}
			})
		}
		wg.Wait()
	}

	db := openDB(t)
	broker := testenv.Kafka(t, localkafka.Options{})
	kcfg := persist.KafkaConfig{Brokers: broker.Addrs(), Topic: testenv.ID("relay-"), Partitions: 3}
	if err := persist.EnsureTopic(ctx, kcfg); err != nil {
		t.Fatal(err)
	}
	kafkaPub := persist.NewPublisher(kcfg)
	defer kafkaPub.Close()
	outbox := reservation.NewOutbox(rdb, time.Second)
	sales := func(context.Context) ([]string, error) { return []string{sale.ID}, nil }
	relay := func(name string, pub engine.Publisher) *engine.Relay {
		r, err := engine.NewRelay(engine.RelayConfig{Outbox: outbox, Publisher: pub, Sales: sales, Consumer: name, Batch: 10})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var published atomic.Int64
	killedRun := func(name string) {
		t.Helper()
		rctx, kill := context.WithCancel(ctx)
		p := &killingPublisher{Publisher: kafkaPub, kill: kill}
		if _, err := relay(name, p).RelayOnce(rctx); err == nil {
			t.Fatalf("relay %s was not killed", name)
		}
		published.Add(p.published.Load())
	}
	drain := func(name string) {
		t.Helper()
		p := &killingPublisher{Publisher: kafkaPub}
		if _, err := relay(name, p).RelayOnce(ctx); err != nil {
			t.Fatal(err)
		}
		published.Add(p.published.Load())
	}

	// 1. Killed mid-batch, then restarted under the same name: it relays
	// its own pending entries first.
	burst(40)
	killedRun("relay-a")
	drain("relay-a")
	// 2. Killed again; this time another relay takes over its pending
	// entries once they are idle long enough (XAUTOCLAIM).
	burst(40)
	killedRun("relay-a")
	drain("relay-b") // new entries only: relay-a's are not idle yet
	if n, _ := outbox.Len(ctx, sale.ID); n == 0 {
		t.Fatal("relay-a's unacknowledged batch vanished from the outbox")
	}
	time.Sleep(1100 * time.Millisecond)
	drain("relay-b")
	if n, err := outbox.Len(ctx, sale.ID); err != nil || n != 0 {
		t.Fatalf("outbox still holds %d events (%v)", n, err)
	}

	holds, err := ledger.Holds(ctx, sale.ID)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for _, h := range holds {
		events++
		if h.State != engine.HoldHeld {
			events++
		}
	}
	if got := published.Load(); got <= int64(events) {
		t.Fatalf("published %d messages for %d events: the kills redelivered nothing", got, events)
	}

	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		persist.Consume(cctx, persist.ConsumerConfig{KafkaConfig: kcfg, Group: "orders"}, db.ApplyEvents)
	})
	defer func() { stop(); wg.Wait() }()
	testenv.Eventually(t, 30*time.Second, func() error {
		r, err := eng.AuditSale(ctx, sale.ID, db.SaleOrders, outbox.Len)
		if err != nil {
			return err
		}
		if len(r.Broken) > 0 {
			t.Fatalf("audit broken:\n%s", r)
		}
		if !r.OK() || r.Orders != len(holds) {
			return fmt.Errorf("audit:\n%s", r)
		}
		return nil
	})
	for _, h := range holds {
		want := 1
		if h.State != engine.HoldHeld {
			want = 2
		}
		if n, err := db.CountEvents(ctx, h.ID); err != nil || n != want {
			t.Fatalf("hold %s (%s): %d events applied, want %d (%v)", h.ID, h.State, n, want, err)
		}
	}
}
