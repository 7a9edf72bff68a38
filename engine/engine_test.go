package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func validSale() Sale {
	return Sale{ID: "s1", Name: "Sale", StartsAt: t0, EndsAt: t0.Add(time.Hour), Allocations: map[string]int{"a": 2, "b": 3}}
}

func TestSaleNormalize(t *testing.T) {
	t.Parallel()
	s := validSale()
	if err := s.normalize(); err != nil {
		t.Fatal(err)
	}
	if s.SKU != "s1" || s.PerUserLimit != DefaultPerUserLimit || s.HoldTTL() != DefaultHoldTTL || s.MaxDistanceKm != DefaultMaxDistanceKm {
		t.Fatalf("defaults not applied: %+v", s)
	}
	if s.Total() != 5 {
		t.Fatalf("total %d", s.Total())
	}
	s.Quantity = 4
	if s.Total() != 4 {
		t.Fatalf("capped total %d", s.Total())
	}
	bad := map[string]func(*Sale){
		"bad id":               func(s *Sale) { s.ID = "a/b" },
		"empty name":           func(s *Sale) { s.Name = "" },
		"no start":             func(s *Sale) { s.StartsAt = time.Time{} },
		"ends before start":    func(s *Sale) { s.EndsAt = s.StartsAt },
		"negative limit":       func(s *Sale) { s.PerUserLimit = -1 },
		"ttl too long":         func(s *Sale) { s.HoldTTLSeconds = int(MaxHoldTTL/time.Second) + 1 },
		"negative ttl":         func(s *Sale) { s.HoldTTLSeconds = -1 },
		"NaN distance":         func(s *Sale) { s.MaxDistanceKm = math.NaN() },
		"distance too far":     func(s *Sale) { s.MaxDistanceKm = 30000 },
		"no allocations":       func(s *Sale) { s.Allocations = nil },
		"zero total":           func(s *Sale) { s.Allocations = map[string]int{"a": 0} },
		"negative allocation":  func(s *Sale) { s.Allocations = map[string]int{"a": -1, "b": 3} },
		"bad store id":         func(s *Sale) { s.Allocations = map[string]int{"a b": 1} },
		"quantity over sum":    func(s *Sale) { s.Quantity = 6 },
		"negative quantity":    func(s *Sale) { s.Quantity = -1 },
		"sku too long":         func(s *Sale) { s.SKU = strings.Repeat("x", 65) },
		"name too long":        func(s *Sale) { s.Name = strings.Repeat("x", 201) },
		"per user limit 1001":  func(s *Sale) { s.PerUserLimit = 1001 },
		"negative distance km": func(s *Sale) { s.MaxDistanceKm = -1 },
	}
	for name, mut := range bad {
		t.Run(name, func(t *testing.T) {
			s := validSale()
			mut(&s)
			if err := s.normalize(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("normalize = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestSaleState(t *testing.T) {
	t.Parallel()
	s := validSale()
	for _, c := range []struct {
		at   time.Time
		want SaleState
	}{
		{t0.Add(-time.Nanosecond), SaleScheduled},
		{t0, SaleLive},
		{t0.Add(time.Hour - time.Nanosecond), SaleLive},
		{t0.Add(time.Hour), SaleEnded},
	} {
		if got := s.State(c.at); got != c.want {
			t.Fatalf("State(%v) = %s, want %s", c.at, got, c.want)
		}
	}
}

func TestStockCheck(t *testing.T) {
	t.Parallel()
	ok := Stock{Initial: 5, Remaining: 2, Held: 2, Confirmed: 1, Stores: map[string]StoreStock{
		"a": {Initial: 2, Remaining: 0, Held: 1, Confirmed: 1},
		"b": {Initial: 3, Remaining: 2, Held: 1},
	}}
	if bad := ok.Check(); len(bad) != 0 {
		t.Fatalf("clean stock reported: %v", bad)
	}
	over := ok
	over.Stores = map[string]StoreStock{"a": {Initial: 2, Remaining: -1, Held: 2, Confirmed: 1}, "b": ok.Stores["b"]}
	if bad := over.Check(); len(bad) == 0 {
		t.Fatal("negative store count not reported")
	}
	lost := ok
	lost.Remaining = 3
	if bad := lost.Check(); len(bad) == 0 {
		t.Fatal("global mismatch not reported")
	}
}

func TestSaleOfHold(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{"s1.abc": "s1", "my-sale_2.x": "my-sale_2"} {
		if got, err := SaleOfHold(id); err != nil || got != want {
			t.Fatalf("SaleOfHold(%q) = %q, %v", id, got, err)
		}
	}
	for _, id := range []string{"", "nodot", ".abc", "s1.", "bad id.x", strings.Repeat("a", 200) + ".x"} {
		if _, err := SaleOfHold(id); !errors.Is(err, ErrUnknownHold) {
			t.Fatalf("SaleOfHold(%q) = %v, want ErrUnknownHold", id, err)
		}
	}
}

// refusingLedger fails the test on any call: requests refused by
// validation must never reach the ledger.
type refusingLedger struct {
	Ledger
	t *testing.T
}

func (l refusingLedger) Sale(context.Context, string) (Sale, error) {
	s := validSale()
	s.Stores = []Store{{ID: "a", Name: "A", Lat: 1, Lon: 1}, {ID: "b", Name: "B", Lat: 1, Lon: 2}}
	return s, nil
}

func (l refusingLedger) Reserve(context.Context, string, time.Time, []LedgerReserve) ([]LedgerOutcome, error) {
	l.t.Fatal("an invalid request reached the ledger")
	return nil, nil
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func TestReserveValidation(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Ledger: refusingLedger{t: t}, Clock: fixedClock(t0.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]ReserveRequest{
		"no user":              {SaleID: "s1", HasLocation: true},
		"bad user":             {SaleID: "s1", UserID: "a b", HasLocation: true},
		"no location or store": {SaleID: "s1", UserID: "u"},
		"lat out of range":     {SaleID: "s1", UserID: "u", HasLocation: true, Lat: -90.5},
		"NaN lon":              {SaleID: "s1", UserID: "u", HasLocation: true, Lon: math.NaN()},
		"negative quantity":    {SaleID: "s1", UserID: "u", HasLocation: true, Quantity: -2},
		"too many":             {SaleID: "s1", UserID: "u", HasLocation: true, Quantity: MaxQuantityPerHold + 1},
		"long key":             {SaleID: "s1", UserID: "u", HasLocation: true, IdempotencyKey: strings.Repeat("k", 129)},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := e.Reserve(context.Background(), r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Reserve = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := e.Reserve(context.Background(), ReserveRequest{SaleID: "s1", UserID: "u", StoreID: "zz"}); !errors.Is(err, ErrUnknownStore) {
		t.Fatalf("unknown store: %v", err)
	}
	early, _ := New(Config{Ledger: refusingLedger{t: t}, Clock: fixedClock(t0.Add(-time.Second))})
	if _, err := early.Reserve(context.Background(), ReserveRequest{SaleID: "s1", UserID: "u", StoreID: "a"}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("before start: %v", err)
	}
}

func TestValidIDs(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 129)
	tests := []struct {
		s          string
		id, userID bool
	}{
		{"store-7_b", true, true},
		{"alice@example.com", false, true},
		{"u:1+2.x", false, true},
		{"", false, false},
		{"a b", false, false},
		{"ü", false, false},
		{"a/b", false, false},
		{"a\x00", false, false},
		{long[:64], true, true},
		{long[:65], false, true},
		{long[:128], false, true},
		{long, false, false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.s); got != tt.id {
			t.Errorf("ValidID(%q) = %v, want %v", tt.s, got, tt.id)
		}
		if got := ValidUserID(tt.s); got != tt.userID {
			t.Errorf("ValidUserID(%q) = %v, want %v", tt.s, got, tt.userID)
		}
	}
}

// movingClock is a clock a test sets.
type movingClock struct{ now atomic.Pointer[time.Time] }

func (c *movingClock) Now() time.Time  { return *c.now.Load() }
func (c *movingClock) set(t time.Time) { c.now.Store(&t) }

// endingLedger serves sale "s<N>" ending N hours after t0, and answers
// every reservation with a hold; it counts the sales it was asked for,
// and lists the sales in ids.
type endingLedger struct {
	refusingLedger
	ids   []string
	mu    sync.Mutex
	reads map[string]int
}

func (l *endingLedger) Sale(ctx context.Context, id string) (Sale, error) {
	s, _ := l.refusingLedger.Sale(ctx, id)
	n, err := strconv.Atoi(strings.TrimPrefix(id, "s"))
	if err != nil {
		return Sale{}, ErrUnknownSale
	}
	s.ID, s.EndsAt = id, t0.Add(time.Duration(n)*time.Hour)
	l.mu.Lock()
	l.reads[id]++
	l.mu.Unlock()
	return s, nil
}

func (l *endingLedger) SaleIDs(context.Context) ([]string, error) { return slices.Clone(l.ids), nil }

func (l *endingLedger) Reserve(_ context.Context, saleID string, _ time.Time, reqs []LedgerReserve) ([]LedgerOutcome, error) {
	return held(saleID, reqs), nil
}

// TestEndedSalesArePutAway: a sale that ended more than putAwayAfter ago
// loses its stores' index and cache, and its coalescer queue, when another
// sale is indexed, at most once a minute; one still running or just ended
// keeps them. The sale itself stays: the passes over every sale (active
// sales, listings) neither read it again nor index it, and a reservation
// indexes it again from memory and works as before. A sale those passes
// meet first long after its end is cached put away from the start.
func TestEndedSalesArePutAway(t *testing.T) {
	t.Parallel()
	for _, coalesce := range []bool{false, true} {
		l := &endingLedger{refusingLedger: refusingLedger{t: t}, reads: map[string]int{}, ids: []string{"s0", "s1", "s3", "s5", "s6", "s7"}}
		clock := &movingClock{}
		clock.set(t0.Add(time.Minute))
		cfg := Config{Ledger: l, Clock: clock}
		if coalesce {
			cfg.Coalesce = &CoalesceConfig{}
		}
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		reserve := func(sale string) {
			t.Helper()
			if _, err := e.Reserve(context.Background(), ReserveRequest{SaleID: sale, UserID: "u", StoreID: "a"}); err != nil {
				t.Fatalf("reserve in %s: %v", sale, err)
			}
		}
		// indexed lists the sales with their index, cached those without,
		// queues the coalescer's.
		state := func() (indexed, cached, queues []string) {
			e.mu.RLock()
			for id, ent := range e.sales {
				if ent.index != nil {
					indexed = append(indexed, id)
				} else {
					cached = append(cached, id)
				}
			}
			e.mu.RUnlock()
			if e.coalescer != nil {
				e.coalescer.mu.Lock()
				for id := range e.coalescer.queues {
					queues = append(queues, id)
				}
				e.coalescer.mu.Unlock()
			}
			slices.Sort(indexed)
			slices.Sort(cached)
			slices.Sort(queues)
			return indexed, cached, queues
		}
		// Every indexed sale but s7, which no one reserved in, has a
		// queue.
		check := func(step string, indexed, cached []string) {
			t.Helper()
			gotI, gotC, gotQ := state()
			if !slices.Equal(gotI, indexed) || !slices.Equal(gotC, cached) {
				t.Fatalf("coalesce %v, %s: indexed %v, put away %v; want %v, %v", coalesce, step, gotI, gotC, indexed, cached)
			}
			queues := slices.DeleteFunc(slices.Clone(indexed), func(id string) bool { return id == "s7" })
			if coalesce && !slices.Equal(gotQ, queues) {
				t.Fatalf("%s: queues %v, want %v", step, gotQ, queues)
			}
		}
		reserve("s1") // ends at t0+1h
		reserve("s3") // ends at t0+3h
		// s1 ended an hour ago, to the nanosecond: not yet put away.
		clock.set(t0.Add(time.Hour + putAwayAfter))
		reserve("s5")
		check("an hour after s1's end", []string{"s1", "s3", "s5"}, nil)
		clock.set(t0.Add(time.Hour + putAwayAfter + time.Minute))
		reserve("s6")
		check("past it", []string{"s3", "s5", "s6"}, []string{"s1"})
		// The passes over every sale see s1 without reading or indexing
		// it, and s0, never seen before and long ended, without indexing
		// it.
		active, err := e.ActiveSaleIDs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Sales(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(active, "s0") || !slices.Contains(active, "s1") || !slices.Contains(active, "s7") {
			t.Fatalf("active sales %v", active) // s7 was never seen and is running: loaded, indexed
		}
		check("after the passes", []string{"s3", "s5", "s6", "s7"}, []string{"s0", "s1"})
		// The ledger answers for an ended sale as it likes: this one
		// still holds, so the put-away sale must work as before.
		reserve("s1")
		check("s1 reserved again", []string{"s1", "s3", "s5", "s6", "s7"}, []string{"s0"})
		for id, n := range l.reads {
			if n != 1 {
				t.Fatalf("coalesce %v: sale %s read %d times, want once", coalesce, id, n)
			}
		}
		// Within the minute of the last pass nothing is put away again.
		clock.set(t0.Add(time.Hour + putAwayAfter + time.Minute + 59*time.Second))
		l.ids = append(l.ids, "s8")
		reserve("s8")
		check("within the minute", []string{"s1", "s3", "s5", "s6", "s7", "s8"}, []string{"s0"})
	}
}

// TestNewID: a configured NewID names holds ("<sale>.<id>") and the
// idempotency entries of requests without a key ("auto-<id>").
func TestNewID(t *testing.T) {
	t.Parallel()
	l := &keyLedger{}
	e, err := New(Config{Ledger: l, Clock: fixedClock(t0.Add(time.Minute)), NewID: func() string { return "fixed" }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Reserve(context.Background(), ReserveRequest{SaleID: "s1", UserID: "u", StoreID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hold.ID != "s1.fixed" || l.key != "auto-fixed" {
		t.Fatalf("hold %q, key %q; want s1.fixed, auto-fixed", res.Hold.ID, l.key)
	}
}

// keyLedger holds every request and remembers the last one's key.
type keyLedger struct {
	refusingLedger
	key string
}

func (l *keyLedger) Reserve(_ context.Context, saleID string, _ time.Time, reqs []LedgerReserve) ([]LedgerOutcome, error) {
	l.key = reqs[len(reqs)-1].Key
	return held(saleID, reqs), nil
}
