package persist_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/localkafka"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/persist"
)

func openDB(t *testing.T) *persist.DB {
	t.Helper()
	ctx := context.Background()
	db, err := persist.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	for range 2 { // migrating twice is a no-op
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// event builds the event of a hold reaching state.
func event(saleID, storeID, holdID string, state engine.HoldState, at time.Time) engine.Event {
	types := map[engine.HoldState]string{
		engine.HoldHeld: engine.EventCreated, engine.HoldConfirmed: engine.EventConfirmed,
		engine.HoldCancelled: engine.EventCancelled, engine.HoldExpired: engine.EventExpired,
	}
	created := at.Add(-time.Second)
	return engine.Event{
		Schema: engine.EventSchema, ID: holdID + ":" + string(state), Type: types[state],
		SaleID: saleID, StoreID: storeID, OccurredAt: at,
		Hold: engine.Hold{ID: holdID, SaleID: saleID, StoreID: storeID, UserID: "u-" + holdID, Quantity: 1,
			State: state, CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute), UpdatedAt: at},
	}
}

func states(t *testing.T, db *persist.DB, saleID string) map[string]engine.HoldState {
	t.Helper()
	orders, err := db.SaleOrders(context.Background(), saleID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]engine.HoldState{}
	for _, o := range orders {
		if _, dup := out[o.ID]; dup {
			t.Fatalf("hold %s has two orders", o.ID)
		}
		out[o.ID] = o.State
	}
	return out
}

func TestApplyEventsIsIdempotentAndMonotonic(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	h1c, h1f := event("s", "st", "s.h1", engine.HoldHeld, now), event("s", "st", "s.h1", engine.HoldConfirmed, now.Add(time.Second))
	h2c, h2f := event("s", "st", "s.h2", engine.HoldHeld, now), event("s", "st", "s.h2", engine.HoldExpired, now.Add(time.Second))
	h3c := event("s", "st", "s.h3", engine.HoldHeld, now)

	// Final states first, then the late "created" events, then everything
	// again: nothing moves backwards and nothing is written twice.
	for _, batch := range [][]engine.Event{{h1f}, {h1c, h2c, h3c}, {h2f}, {h1c, h1f, h2c, h2f, h3c, h3c}} {
		if err := db.ApplyEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got := states(t, db, "s")
	want := map[string]engine.HoldState{"s.h1": engine.HoldConfirmed, "s.h2": engine.HoldExpired, "s.h3": engine.HoldHeld}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("orders %v, want %v", got, want)
	}
	for id, n := range map[string]int{"s.h1": 2, "s.h2": 2, "s.h3": 1} {
		if c, err := db.CountEvents(ctx, id); err != nil || c != n {
			t.Fatalf("hold %s: %d events recorded (%v), want %d", id, c, err, n)
		}
	}
	// Packing is the store's own: another store cannot pack it, and a
	// missing order is not found.
	if _, err := db.MarkPacked(ctx, "other", "s.h3", now); err == nil {
		t.Fatal("another store packed the order")
	}
	if o, err := db.MarkPacked(ctx, "st", "s.h3", now); err != nil || o.PackedAt == nil {
		t.Fatalf("pack: %v %v", o, err)
	}
}

// TestDuplicateDeliveryThroughKafka publishes every event twice and checks
// that the orders and notify consumers write each once.
func TestDuplicateDeliveryThroughKafka(t *testing.T) {
	db := openDB(t)
	broker := testenv.Kafka(t, localkafka.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kcfg := persist.KafkaConfig{Brokers: broker.Addrs(), Topic: testenv.ID("t-"), Partitions: 4}
	if err := persist.EnsureTopic(ctx, kcfg); err != nil {
		t.Fatal(err)
	}
	pub := persist.NewPublisher(kcfg)
	defer pub.Close()

	saleID := testenv.ID("dup-")
	now := time.Now().UTC()
	var events []engine.Event
	for i := range 40 {
		store := fmt.Sprintf("st%d", i%3)
		id := fmt.Sprintf("%s.h%02d", saleID, i)
		events = append(events, event(saleID, store, id, engine.HoldHeld, now))
		if i%2 == 0 {
			events = append(events, event(saleID, store, id, engine.HoldCancelled, now.Add(time.Second)))
		}
	}
	for range 2 {
		if err := pub.Publish(ctx, events); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		persist.Consume(ctx, persist.ConsumerConfig{KafkaConfig: kcfg, Group: "orders"}, db.ApplyEvents)
	})
	wg.Go(func() {
		persist.Consume(ctx, persist.ConsumerConfig{KafkaConfig: kcfg, Group: "notify"}, func(ctx context.Context, evs []engine.Event) error {
			_, err := db.RecordStoreEvents(ctx, evs, func(store string) string {
				if store == "st0" {
					return "http://127.0.0.1:1/hook"
				}
				return ""
			})
			return err
		})
	})

	// 60 distinct events, 120 messages: wait until both groups consumed all
	// 120 (their lag is zero), then count what was written.
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, g := range []string{"orders", "notify"} {
			lag, err := persist.GroupLag(ctx, kcfg, g)
			if err != nil || lag != 0 {
				return fmt.Errorf("group %s lag %d (%v)", g, lag, err)
			}
		}
		return nil
	})
	got := states(t, db, saleID)
	if len(got) != 40 {
		t.Fatalf("%d orders, want 40", len(got))
	}
	total := 0
	for i := range 3 {
		evs, err := db.StoreEvents(ctx, fmt.Sprintf("st%d", i), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			var ev engine.Event
			if ev, err = engine.DecodeEvent(e.Payload); err != nil {
				t.Fatal(err)
			}
			if seen[ev.ID] {
				t.Fatalf("store st%d notified twice of %s", i, ev.ID)
			}
			seen[ev.ID] = true
		}
		total += len(evs)
	}
	if total != 60 {
		t.Fatalf("%d store notifications, want 60", total)
	}
	ds, err := db.Deliveries(ctx, "st0")
	if err != nil {
		t.Fatal(err)
	}
	if want := 14 + 7; len(ds) != want { // st0 has holds 0,3,...,39 (14), 7 of them cancelled
		t.Fatalf("%d webhook deliveries for st0, want %d", len(ds), want)
	}
}

// TestWebhooksRetrySignAndDeadLetter runs the webhook worker against a
// receiver that fails the first attempts and checks every signature.
func TestWebhooksRetrySignAndDeadLetter(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	secret := func(store string) string { return engine.WebhookSecret("admin-secret-0123456789", store) }

	var mu sync.Mutex
	attempts := map[string]int{} // by delivery id
	accepted := map[string]int{}
	var bad []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(persist.DeliveryHeader)
		mu.Lock()
		defer mu.Unlock()
		if !persist.Verify(secret("good"), body, r.Header.Get(persist.SignatureHeader)) {
			bad = append(bad, id)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := engine.DecodeEvent(body); err != nil || r.Header.Get(persist.EventHeader) == "" {
			bad = append(bad, id+": "+fmt.Sprint(err))
		}
		attempts[id]++
		if attempts[id] <= 2 { // the first two attempts fail
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		accepted[id]++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer dead.Close()

	now := time.Now().UTC()
	events := []engine.Event{
		event("w", "good", "w.h1", engine.HoldHeld, now),
		event("w", "good", "w.h2", engine.HoldHeld, now),
		event("w", "good", "w.h1", engine.HoldConfirmed, now),
		event("w", "gone", "w.h3", engine.HoldHeld, now),
	}
	urls := map[string]string{"good": recv.URL, "gone": dead.URL}
	for range 2 { // recorded twice, queued once
		if _, err := db.RecordStoreEvents(ctx, events, func(s string) string { return urls[s] }); err != nil {
			t.Fatal(err)
		}
	}
	w := &persist.WebhookWorker{DB: db, Secret: secret, MaxAttempts: 4, Backoff: 10 * time.Millisecond}
	testenv.Eventually(t, 20*time.Second, func() error {
		if _, err := w.RunOnce(ctx); err != nil {
			return err
		}
		for _, store := range []string{"good", "gone"} {
			ds, err := db.Deliveries(ctx, store)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if d.Status == "pending" {
					return fmt.Errorf("delivery %s still pending after %d attempts", d.Delivery, d.Attempts)
				}
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("receiver rejected: %v", bad)
	}
	if len(accepted) != 3 {
		t.Fatalf("accepted %v, want 3 deliveries", accepted)
	}
	for id, n := range accepted {
		if n != 1 || attempts[id] != 3 {
			t.Fatalf("delivery %s accepted %d times after %d attempts", id, n, attempts[id])
		}
	}
	good, _ := db.Deliveries(ctx, "good")
	for _, d := range good {
		if d.Status != "delivered" || d.Attempts != 3 {
			t.Fatalf("good delivery: %+v", d)
		}
	}
	gone, _ := db.Deliveries(ctx, "gone")
	if len(gone) != 1 || gone[0].Status != "dead" || gone[0].Attempts != 4 || gone[0].LastError == "" {
		t.Fatalf("dead-lettered delivery: %+v", gone)
	}

	// A forged or altered webhook is detectable.
	body := []byte(`{"schema":"flashsale.hold.v1"}`)
	if !persist.Verify(secret("good"), body, persist.Sign(secret("good"), body)) {
		t.Fatal("a genuine signature does not verify")
	}
	for _, sig := range []string{persist.Sign(secret("gone"), body), persist.Sign("guess", body), "", "sha256=00"} {
		if persist.Verify(secret("good"), body, sig) {
			t.Fatalf("forged signature %q verified", sig)
		}
	}
	if persist.Verify(secret("good"), append(body, ' '), persist.Sign(secret("good"), body)) {
		t.Fatal("an altered body verified")
	}
}
