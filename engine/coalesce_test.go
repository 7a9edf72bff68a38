package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedLedger answers Reserve calls only when the test lets it, and
// records every batch it was sent. It is a rule test's stand-in: the
// reservation package runs the coalescer against real Redis.
type gatedLedger struct {
	refusingLedger
	gate    chan struct{} // one receive per call
	entered chan int      // the size of each call, as it starts
	mu      sync.Mutex
	batches [][]string // user ids per call
	fail    error
}

func newGatedLedger(t *testing.T) *gatedLedger {
	return &gatedLedger{refusingLedger: refusingLedger{t: t}, gate: make(chan struct{}), entered: make(chan int, 100)}
}

func (l *gatedLedger) Sale(ctx context.Context, id string) (Sale, error) {
	s, _ := l.refusingLedger.Sale(ctx, id)
	s.ID, s.MaxDistanceKm = id, 500
	return s, nil
}

// next returns the size of the next call to start, failing the test when
// none starts within 5 s.
func (l *gatedLedger) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-l.entered:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no ledger call started")
		return 0
	}
}

func (l *gatedLedger) Reserve(ctx context.Context, saleID string, now time.Time, reqs []LedgerReserve) ([]LedgerOutcome, error) {
	users := make([]string, len(reqs))
	for i, r := range reqs {
		users[i] = r.UserID
	}
	l.mu.Lock()
	l.batches = append(l.batches, users)
	l.mu.Unlock()
	l.entered <- len(reqs)
	select {
	case <-l.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l.fail != nil {
		return nil, l.fail
	}
	return held(saleID, reqs), nil
}

// held answers every request of reqs with a hold.
func held(saleID string, reqs []LedgerReserve) []LedgerOutcome {
	out := make([]LedgerOutcome, len(reqs))
	for i, r := range reqs {
		out[i] = LedgerOutcome{Hold: Hold{ID: r.HoldID, SaleID: saleID, UserID: r.UserID, StoreID: r.Candidates[0].StoreID, State: HoldHeld}}
	}
	return out
}

// gatedBatchLedger is a gatedLedger that also takes several sales'
// batches in one call, as the Redis ledger does, and records each call's
// batches as "sale:user,user". The batch of sale "down" fails.
type gatedBatchLedger struct {
	*gatedLedger
	trips chan []string
}

func (l *gatedBatchLedger) ReserveBatches(ctx context.Context, now time.Time, batches []SaleBatch) {
	trip := make([]string, len(batches))
	for i, b := range batches {
		users := make([]string, len(b.Reqs))
		for j, r := range b.Reqs {
			users[j] = r.UserID
		}
		trip[i] = b.SaleID + ":" + strings.Join(users, ",")
	}
	l.trips <- trip
	select {
	case <-l.gate:
	case <-ctx.Done():
		for i := range batches {
			batches[i].Err = ctx.Err()
		}
		return
	}
	for i := range batches {
		b := &batches[i]
		if b.SaleID == "down" {
			b.Err = fmt.Errorf("%w: redis down", ErrUnavailable)
			continue
		}
		b.Outs = held(b.SaleID, b.Reqs)
	}
}

// nextTrip returns the batches of the next call, failing the test when
// none starts within 5 s.
func (l *gatedBatchLedger) nextTrip(t *testing.T) string {
	t.Helper()
	select {
	case trip := <-l.trips:
		return strings.Join(trip, " ")
	case <-time.After(5 * time.Second):
		t.Fatal("no ledger call started")
		return ""
	}
}

func coalescingEngine(t *testing.T, l Ledger, cfg CoalesceConfig) *Engine {
	t.Helper()
	e, err := New(Config{Ledger: l, Clock: fixedClock(t0.Add(time.Minute)), Coalesce: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func reserveAsync(e *Engine, ctx context.Context, user string) chan error {
	return reserveAsyncIn(e, ctx, "s1", user)
}

func reserveAsyncIn(e *Engine, ctx context.Context, sale, user string) chan error {
	done := make(chan error, 1)
	go func() {
		res, err := e.Reserve(ctx, ReserveRequest{SaleID: sale, UserID: user, HasLocation: true, Lat: 1, Lon: 1})
		if err == nil && (res.Hold.UserID != user || res.Hold.SaleID != sale) {
			err = fmt.Errorf("%s of %s got the hold of %s of %s", user, sale, res.Hold.UserID, res.Hold.SaleID)
		}
		done <- err
	}()
	return done
}

// TestCoalescerBatchesInArrivalOrder holds the first call open, queues
// more reservations behind it, and checks they go out together, in order.
func TestCoalescerBatchesInArrivalOrder(t *testing.T) {
	l := newGatedLedger(t)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1, MaxBatch: 4})
	first := reserveAsync(e, context.Background(), "u0")
	if n := l.next(t); n != 1 {
		t.Fatalf("first call carried %d", n)
	}
	var rest []chan error
	for i := 1; i <= 6; i++ {
		rest = append(rest, reserveAsync(e, context.Background(), fmt.Sprintf("u%d", i)))
		waitQueued(t, e, int64(i))
	}
	l.gate <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// Six waiting, at most four per call: 4 then 2.
	for _, want := range []int{4, 2} {
		if n := l.next(t); n != want {
			t.Fatalf("call carried %d, want %d", n, want)
		}
		l.gate <- struct{}{}
	}
	for _, done := range rest {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := fmt.Sprint(l.batches); got != "[[u0] [u1 u2 u3 u4] [u5 u6]]" {
		t.Fatalf("batches %s", got)
	}
}

// waitQueued waits until n reservations wait in the coalescer's queues.
func waitQueued(t *testing.T, e *Engine, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.CoalesceStats().Queued != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", e.CoalesceStats().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescerShedsWhenFull fills the bounded queue and expects the next
// reservation to fail at once with ErrOverloaded.
func TestCoalescerShedsWhenFull(t *testing.T) {
	l := newGatedLedger(t)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1, QueueSize: 3})
	first := reserveAsync(e, context.Background(), "u0")
	l.next(t)
	var queued []chan error
	for i := 1; i <= 3; i++ {
		queued = append(queued, reserveAsync(e, context.Background(), fmt.Sprintf("u%d", i)))
		waitQueued(t, e, int64(i))
	}
	if err := <-reserveAsync(e, context.Background(), "late"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("a reservation past a full queue: %v, want ErrOverloaded", err)
	}
	if s := e.CoalesceStats(); s.Shed != 1 {
		t.Fatalf("stats %+v", s)
	}
	close(l.gate) // let every call through
	for _, done := range append(queued, first) {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCoalescerHonoursDeadlines lets a queued reservation's deadline pass:
// it fails with ErrUnavailable and is never sent to the ledger.
func TestCoalescerHonoursDeadlines(t *testing.T) {
	l := newGatedLedger(t)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1})
	first := reserveAsync(e, context.Background(), "u0")
	l.next(t)
	ctx, cancel := context.WithCancel(context.Background())
	gone := reserveAsync(e, ctx, "gone")
	waitQueued(t, e, 1)
	stays := reserveAsync(e, context.Background(), "stays")
	waitQueued(t, e, 2)
	cancel()
	if err := <-gone; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reservation: %v", err)
	}
	close(l.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-stays; err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := fmt.Sprint(l.batches); got != "[[u0] [stays]]" {
		t.Fatalf("batches %s: the cancelled reservation was sent", got)
	}
}

// TestCoalescerAbandonedWaitIsNotReused lets a shopper give up while
// their batch is in flight. The answer that batch gives them later must
// reach no one else, however many reservations follow: the coalescer
// keeps answered waits for reuse, and an abandoned one is not answered
// yet.
func TestCoalescerAbandonedWaitIsNotReused(t *testing.T) {
	l := newGatedLedger(t)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1})
	ctx, cancel := context.WithCancel(context.Background())
	gone := reserveAsync(e, ctx, "gone")
	l.next(t) // its batch is in flight
	cancel()
	if err := <-gone; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("abandoned reservation: %v", err)
	}
	var rest []chan error
	for i := range 50 {
		rest = append(rest, reserveAsync(e, context.Background(), fmt.Sprintf("u%d", i)))
	}
	waitQueued(t, e, 50)
	close(l.gate) // the abandoned batch is answered, then the others'
	for _, done := range rest {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCoalescerFailsTheWholeBatch checks that a failed call fails every
// reservation it carried, and the next call is made afresh.
func TestCoalescerFailsTheWholeBatch(t *testing.T) {
	l := newGatedLedger(t)
	l.fail = fmt.Errorf("%w: redis down", ErrUnavailable)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1})
	first := reserveAsync(e, context.Background(), "u0")
	l.next(t)
	a, b := reserveAsync(e, context.Background(), "a"), reserveAsync(e, context.Background(), "b")
	waitQueued(t, e, 2)
	close(l.gate)
	for _, done := range []chan error{first, a, b} {
		if err := <-done; !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reservation in a failed call: %v", err)
		}
	}
}

// TestCoalescerWaitsForCompanyOnlyWhenBusy sets a MaxWait far longer than
// the test: a lone reservation must still go at once, and once a call has
// carried more than one, a lone newcomer waits until the batch is full.
func TestCoalescerWaitsForCompanyOnlyWhenBusy(t *testing.T) {
	l := newGatedLedger(t)
	var queued atomic.Int64
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1, MaxBatch: 3, MaxWait: time.Hour,
		OnQueued: func(time.Duration) { queued.Add(1) }})
	waiting := make(chan int, 10)
	e.coalescer.onWait = func(n int) { waiting <- n }
	lone := reserveAsync(e, context.Background(), "u0")
	if n := l.next(t); n != 1 {
		t.Fatalf("lone call carried %d", n)
	}
	// Two more arrive while the first is in flight: they go together.
	a := reserveAsync(e, context.Background(), "u1")
	waitQueued(t, e, 1)
	b := reserveAsync(e, context.Background(), "u2")
	waitQueued(t, e, 2)
	l.gate <- struct{}{}
	if n := l.next(t); n != 2 {
		t.Fatalf("second call carried %d, want 2", n)
	}
	l.gate <- struct{}{}
	for _, done := range []chan error{lone, a, b} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// The sale is busy now: a newcomer waits for company up to MaxWait, so
	// it goes out only with two more, as one full batch.
	c := reserveAsync(e, context.Background(), "u3")
	select {
	case n := <-waiting:
		if n != 1 {
			t.Fatalf("waiting with %d, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the busy sale's newcomer did not wait for company")
	}
	d, f := reserveAsync(e, context.Background(), "u4"), reserveAsync(e, context.Background(), "u5")
	if n := l.next(t); n != 3 {
		t.Fatalf("busy call carried %d, want 3", n)
	}
	l.gate <- struct{}{}
	for _, done := range []chan error{c, d, f} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := queued.Load(); n != 6 {
		t.Fatalf("OnQueued told of %d reservations, want 6", n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := fmt.Sprint(l.batches[:2]); got != "[[u0] [u1 u2]]" || l.batches[2][0] != "u3" {
		t.Fatalf("batches %v", l.batches)
	}
}

// TestCoalescerLoneReservation checks a reservation that finds its sale
// idle: it is sent at once as a call of its own and no longer counts as
// queued; its caller's deadline answers the caller at once, while the call
// already sent finishes and frees its slot for the next reservation.
func TestCoalescerLoneReservation(t *testing.T) {
	l := newGatedLedger(t)
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1})
	ctx, cancel := context.WithCancel(context.Background())
	lone := reserveAsync(e, ctx, "u0")
	if n := l.next(t); n != 1 {
		t.Fatalf("lone call carried %d", n)
	}
	if s := e.CoalesceStats(); s.Queued != 0 {
		t.Fatalf("a lone reservation was queued: %+v", s)
	}
	cancel()
	if err := <-lone; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("lone reservation past its deadline: %v", err)
	}
	next := reserveAsync(e, context.Background(), "u1")
	l.gate <- struct{}{} // the abandoned call ends; its slot is free
	if n := l.next(t); n != 1 {
		t.Fatalf("next call carried %d", n)
	}
	l.gate <- struct{}{}
	if err := <-next; err != nil {
		t.Fatal(err)
	}
}

// TestCoalescerSendsReadySalesTogether holds one call open while
// reservations of several sales queue behind it: the sales then travel
// together, in the order they became ready, each as its own batch, at
// most MaxSales to a call; a sale with a call in flight waits for it (its
// InFlight limit) and goes next; a batch that fails fails only its own
// reservations.
func TestCoalescerSendsReadySalesTogether(t *testing.T) {
	l := &gatedBatchLedger{gatedLedger: newGatedLedger(t), trips: make(chan []string, 10)}
	var sales []int
	var mu sync.Mutex
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1, Calls: 1, MaxSales: 3,
		OnCall: func(n int) { mu.Lock(); sales = append(sales, n); mu.Unlock() }})
	first := reserveAsyncIn(e, context.Background(), "s1", "u0")
	if got := l.nextTrip(t); got != "s1:u0" {
		t.Fatalf("first call %q", got)
	}
	var done []chan error
	for i, sale := range []string{"s2", "s3", "s1", "s2", "down", "s4"} {
		done = append(done, reserveAsyncIn(e, context.Background(), sale, fmt.Sprintf("u%d", i+1)))
		waitQueued(t, e, int64(i+1))
	}
	l.gate <- struct{}{}
	if got, want := l.nextTrip(t), "s2:u1,u4 s3:u2 down:u5"; got != want {
		t.Fatalf("second call %q, want %q", got, want)
	}
	l.gate <- struct{}{}
	if got, want := l.nextTrip(t), "s4:u6 s1:u3"; got != want {
		t.Fatalf("third call %q, want %q", got, want)
	}
	l.gate <- struct{}{}
	for i, ch := range append([]chan error{first}, done...) {
		err := <-ch
		if (i == 5) != errors.Is(err, ErrUnavailable) || (i != 5 && err != nil) {
			t.Fatalf("reservation %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sales) != "[1 3 2]" {
		t.Fatalf("OnCall told of %v sales per call, want [1 3 2]", sales)
	}
}

// TestCoalescerCallsBound lets no call finish while reservations of many
// sales arrive: no more than Calls calls start, and every reservation is
// answered once they finish.
func TestCoalescerCallsBound(t *testing.T) {
	l := &gatedBatchLedger{gatedLedger: newGatedLedger(t), trips: make(chan []string, 100)}
	e := coalescingEngine(t, l, CoalesceConfig{InFlight: 1, Calls: 2, MaxSales: 1})
	var done []chan error
	for i := range 6 {
		done = append(done, reserveAsyncIn(e, context.Background(), fmt.Sprintf("s%d", i), "u"))
	}
	l.nextTrip(t)
	l.nextTrip(t)
	waitQueued(t, e, 4)
	select {
	case trip := <-l.trips:
		t.Fatalf("a third call started: %v", trip)
	default:
	}
	for range 6 {
		l.gate <- struct{}{}
	}
	for _, ch := range done {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.trips); n != 4 {
		t.Fatalf("%d more calls, want 4 (one per sale)", n)
	}
}
