package reservation_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t      *testing.T
	ctx    context.Context
	rdb    redis.UniversalClient
	ledger *reservation.Ledger
	eng    *engine.Engine
	clock  *testenv.Clock
}

// bothModes runs a test against a fixture whose engine coalesces
// reservations (the production default) and one that sends each alone.
func bothModes(t *testing.T, test func(t *testing.T, f *fixture)) {
	bothModesWith(t, engine.CoalesceConfig{}, test)
}

// bothModesWith is bothModes with cc as the coalescing mode's settings.
func bothModesWith(t *testing.T, cc engine.CoalesceConfig, test func(t *testing.T, f *fixture)) {
	for _, coalesce := range []bool{true, false} {
		name := "direct"
		if coalesce {
			name = "coalesced"
		}
		t.Run(name, func(t *testing.T) {
			test(t, newFixtureWith(t, func(cfg *engine.Config) {
				if coalesce {
					cfg.Coalesce = &cc
				}
			}))
		})
	}
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, func(cfg *engine.Config) { cfg.Coalesce = &engine.CoalesceConfig{} })
}

// newFixtureWith is a fixture whose engine configuration mut adjusts.
func newFixtureWith(t *testing.T, mut func(*engine.Config)) *fixture {
	t.Helper()
	rdb, ledger := testenv.Ledger(t, "test-ns-")
	clock := testenv.NewClock(t0)
	cfg := engine.Config{Ledger: ledger, Clock: clock}
	mut(&cfg)
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: context.Background(), rdb: rdb, ledger: ledger, eng: eng, clock: clock}
}

// lineStores returns n stores on a line eastwards, about 0.68 km apart,
// with ids s0, s1, ... (prefixed to keep tests apart).
func lineStores(prefix string, n int) []engine.Store {
	out := make([]engine.Store, n)
	for i := range out {
		out[i] = engine.Store{ID: fmt.Sprintf("%s%d", prefix, i), Name: fmt.Sprintf("Store %d", i), Lat: 52.5, Lon: 13.4 + float64(i)*0.01}
	}
	return out
}

// newSale saves stores and a live sale over them (started at t0, ends an
// hour later) and returns it; mut adjusts the sale before creation.
func (f *fixture) newSale(stores []engine.Store, alloc []int, mut func(*engine.Sale)) engine.Sale {
	f.t.Helper()
	if err := f.eng.UpsertStores(f.ctx, stores); err != nil {
		f.t.Fatal(err)
	}
	s := engine.Sale{
		ID: testenv.ID("sale-"), Name: "test sale",
		StartsAt: t0, EndsAt: t0.Add(time.Hour),
		PerUserLimit: 1, HoldTTLSeconds: 60, MaxDistanceKm: 50,
		Allocations: map[string]int{},
	}
	for i, q := range alloc {
		s.Allocations[stores[i].ID] = q
	}
	if mut != nil {
		mut(&s)
	}
	created, err := f.eng.CreateSale(f.ctx, s)
	if err != nil {
		f.t.Fatal(err)
	}
	return created
}

func (f *fixture) stock(saleID string) engine.Stock {
	f.t.Helper()
	st, err := f.ledger.Stock(f.ctx, saleID)
	if err != nil {
		f.t.Fatal(err)
	}
	if bad := st.Check(); len(bad) > 0 {
		f.t.Fatalf("stock invariants broken: %v", bad)
	}
	return st
}

// outboxLen returns how many events a sale's outbox holds.
func (f *fixture) outboxLen(saleID string) int64 { return int64(len(f.events(saleID))) }

// events returns the outbox event ids of a sale, in order.
func (f *fixture) events(saleID string) []string {
	f.t.Helper()
	msgs, err := f.rdb.XRange(f.ctx, reservation.OutboxKey(saleID), "-", "+").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	entries, err := reservation.OutboxEvents(f.ctx, f.rdb, saleID, msgs)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Event.ID)
	}
	return out
}

func reserveAt(lat, lon float64, user, key string) engine.ReserveRequest {
	return engine.ReserveRequest{UserID: user, IdempotencyKey: key, HasLocation: true, Lat: lat, Lon: lon}
}

// TestConcurrentReserveNeverOversells runs hundreds of shoppers at once
// against a small stock spread unevenly over several stores and a global cap
// below the allocations' sum.
func TestConcurrentReserveNeverOversells(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 6)
		alloc := []int{1, 2, 0, 4, 7, 3} // 17 allocated
		sale := f.newSale(stores, alloc, func(s *engine.Sale) { s.Quantity = 15; s.PerUserLimit = 2 })

		const workers = 400
		type result struct {
			user, key string
			qty       int
			res       engine.Reservation
			err       error
			replay    engine.Reservation
			replayErr error
		}
		results := make([]result, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 42))
				r := &results[i]
				r.user = fmt.Sprintf("u%03d", i/2) // two workers per user
				r.key = fmt.Sprintf("k%d", i)
				r.qty = 1 + i%2 // every user asks for 1 and for 2 units: limit 2 allows one of them
				req := reserveAt(52.5+rng.Float64()*0.02-0.01, 13.38+rng.Float64()*0.08, r.user, r.key)
				req.SaleID, req.Quantity = sale.ID, r.qty
				<-start
				r.res, r.err = f.eng.Reserve(f.ctx, req)
				r.replay, r.replayErr = f.eng.Reserve(f.ctx, req)
			})
		}
		close(start)
		wg.Wait()

		units, holds := 0, map[string]bool{}
		perUser := map[string]int{}
		for _, r := range results {
			if r.err != nil {
				if !errors.Is(r.err, engine.ErrSoldOut) && !errors.Is(r.err, engine.ErrNoStoreStock) && !errors.Is(r.err, engine.ErrLimitReached) {
					t.Fatalf("%s/%s: unexpected error %v", r.user, r.key, r.err)
				}
				continue
			}
			h := r.res.Hold
			if r.res.Replayed || h.State != engine.HoldHeld || h.Quantity != r.qty || h.UserID != r.user {
				t.Fatalf("%s/%s: bad hold %+v replayed=%v", r.user, r.key, h, r.res.Replayed)
			}
			if holds[h.ID] {
				t.Fatalf("hold %s returned twice", h.ID)
			}
			holds[h.ID] = true
			units += h.Quantity
			perUser[r.user] += h.Quantity
			if r.replayErr != nil || !r.replay.Replayed || r.replay.Hold.ID != h.ID {
				t.Fatalf("%s/%s: replay gave %+v, %v; want hold %s replayed", r.user, r.key, r.replay, r.replayErr, h.ID)
			}
		}
		if units != 15 {
			t.Fatalf("held %d units, want exactly the global cap 15", units)
		}
		for u, n := range perUser {
			if n > 2 {
				t.Fatalf("user %s holds %d units over the limit of 2", u, n)
			}
		}
		st := f.stock(sale.ID)
		if st.Remaining != 0 || st.Held != 15 {
			t.Fatalf("global remaining %d held %d, want 0 and 15", st.Remaining, st.Held)
		}
		for i, q := range alloc {
			ss := st.Stores[stores[i].ID]
			if ss.Initial != q || ss.Held > q {
				t.Fatalf("store %s: %+v, allocation %d", stores[i].ID, ss, q)
			}
		}
		all, err := f.ledger.Holds(f.ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(holds) {
			t.Fatalf("ledger has %d holds, shoppers got %d", len(all), len(holds))
		}
		if n := f.outboxLen(sale.ID); n != int64(len(holds)) {
			t.Fatalf("outbox has %d events for %d holds", n, len(holds))
		}
	})
}

// TestReserveRoutesToNearestStoreWithStock checks the nearest-first fallback,
// the radius, and the sold-out/no-store distinction.
func TestReserveRoutesToNearestStoreWithStock(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 4) // 0, 0.68, 1.36, 2.03 km east
		sale := f.newSale(stores, []int{1, 0, 1, 1}, func(s *engine.Sale) { s.MaxDistanceKm = 1.5; s.PerUserLimit = 5 })
		near := func(user string) (engine.Reservation, error) {
			r := reserveAt(52.5, 13.3995, user, "") // ~0.03 km west of s0
			r.SaleID = sale.ID
			return f.eng.Reserve(f.ctx, r)
		}
		res, err := near("a")
		if err != nil || res.Hold.StoreID != stores[0].ID {
			t.Fatalf("first shopper: %+v %v, want store %s", res.Hold, err, stores[0].ID)
		}
		if res.StoreName != "Store 0" || res.Hold.DistanceKm <= 0 || res.Hold.DistanceKm > 0.1 {
			t.Fatalf("first shopper: store name %q distance %v", res.StoreName, res.Hold.DistanceKm)
		}
		res, err = near("b") // s0 sold out, s1 has none allocated: s2 at 1.36 km
		if err != nil || res.Hold.StoreID != stores[2].ID {
			t.Fatalf("second shopper: %+v %v, want store %s", res.Hold, err, stores[2].ID)
		}
		if _, err = near("c"); !errors.Is(err, engine.ErrNoStoreStock) {
			t.Fatalf("third shopper: %v, want ErrNoStoreStock (s3 is outside 1.5 km)", err)
		}
		// The shopper can still ask for the far store by id.
		byStore := engine.ReserveRequest{SaleID: sale.ID, UserID: "c", StoreID: stores[3].ID}
		if res, err = f.eng.Reserve(f.ctx, byStore); err != nil || res.Hold.StoreID != stores[3].ID {
			t.Fatalf("by store id: %+v %v", res.Hold, err)
		}
		if _, err = near("d"); !errors.Is(err, engine.ErrSoldOut) {
			t.Fatalf("fourth shopper: %v, want ErrSoldOut", err)
		}
		byStore.StoreID = "nope"
		if _, err = f.eng.Reserve(f.ctx, byStore); !errors.Is(err, engine.ErrUnknownStore) {
			t.Fatalf("unknown store: %v", err)
		}
		f.stock(sale.ID)
	})
}

// TestReserveSearchesBeyondFirstCandidates sells out the 16 nearest stores
// and expects the 17th to be found.
func TestReserveSearchesBeyondFirstCandidates(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 20)
		alloc := make([]int, 20)
		alloc[18] = 2
		sale := f.newSale(stores, alloc, func(s *engine.Sale) { s.MaxDistanceKm = 100 })
		r := reserveAt(52.5, 13.4, "far", "")
		r.SaleID = sale.ID
		res, err := f.eng.Reserve(f.ctx, r)
		if err != nil || res.Hold.StoreID != stores[18].ID {
			t.Fatalf("got %+v %v, want store %s", res.Hold, err, stores[18].ID)
		}
	})
}

func TestSaleWindow(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 1)
		sale := f.newSale(stores, []int{5}, func(s *engine.Sale) { s.PerUserLimit = 5 })
		req := engine.ReserveRequest{SaleID: sale.ID, UserID: "w", StoreID: stores[0].ID}

		f.clock.Set(t0.Add(-time.Millisecond))
		if _, err := f.eng.Reserve(f.ctx, req); !errors.Is(err, engine.ErrNotStarted) {
			t.Fatalf("before start: %v, want ErrNotStarted", err)
		}
		// The script checks the window too, whatever the caller believes.
		outs, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(-time.Second), []engine.LedgerReserve{{
			HoldID: sale.ID + ".x", UserID: "w", Key: "k", Quantity: 1, Candidates: []engine.Candidate{{StoreID: stores[0].ID}},
		}})
		if err != nil || !errors.Is(outs[0].Err, engine.ErrNotStarted) {
			t.Fatalf("script before start: %v %v", outs, err)
		}
		f.clock.Set(t0)
		req.IdempotencyKey = "live"
		live, err := f.eng.Reserve(f.ctx, req)
		if err != nil {
			t.Fatalf("at start: %v", err)
		}
		f.clock.Set(sale.EndsAt)
		req.IdempotencyKey = "late"
		if _, err := f.eng.Reserve(f.ctx, req); !errors.Is(err, engine.ErrEnded) {
			t.Fatalf("at end: %v, want ErrEnded", err)
		}
		// A retry of a request that succeeded during the sale still answers.
		req.IdempotencyKey = "live"
		if res, err := f.eng.Reserve(f.ctx, req); err != nil || res.Hold.ID != live.Hold.ID || !res.Replayed {
			t.Fatalf("replay after end: %+v %v", res, err)
		}
		st := f.stock(sale.ID)
		if st.Held != 1 {
			t.Fatalf("held %d, want 1", st.Held)
		}
	})
}

func TestPerUserLimitAndQuantity(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 2)
		sale := f.newSale(stores, []int{3, 3}, func(s *engine.Sale) { s.PerUserLimit = 3 })
		req := engine.ReserveRequest{SaleID: sale.ID, UserID: "q", StoreID: stores[0].ID, Quantity: 2}
		if _, err := f.eng.Reserve(f.ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := f.eng.Reserve(f.ctx, req); !errors.Is(err, engine.ErrLimitReached) {
			t.Fatalf("over the limit: %v", err)
		}
		req.Quantity = 1
		h, err := f.eng.Reserve(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// A cancelled hold gives the shopper's allowance back.
		if _, err := f.eng.Cancel(f.ctx, h.Hold.ID, engine.Actor{UserID: "q"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.eng.Reserve(f.ctx, req); err != nil {
			t.Fatalf("after cancel: %v", err)
		}
		// Two units asked at a store with one left: that store cannot serve it.
		req.UserID, req.Quantity = "r", 2
		if _, err := f.eng.Reserve(f.ctx, req); !errors.Is(err, engine.ErrNoStoreStock) {
			t.Fatalf("quantity over store stock: %v", err)
		}
		f.stock(sale.ID)
	})
}

// holdN takes n single-unit holds for users u0..u(n-1) at the sale's first
// store.
func (f *fixture) holdN(sale engine.Sale, n int) []engine.Hold {
	f.t.Helper()
	out := make([]engine.Hold, n)
	for i := range n {
		res, err := f.eng.Reserve(f.ctx, engine.ReserveRequest{SaleID: sale.ID, UserID: fmt.Sprintf("u%d", i), StoreID: sale.Stores[0].ID})
		if err != nil {
			f.t.Fatal(err)
		}
		out[i] = res.Hold
	}
	return out
}

// TestExpireAndCancelRace cancels holds while the sweeper, at a later time,
// expires them: each hold ends exactly once and its unit comes back exactly
// once.
func TestExpireAndCancelRace(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		sale := f.newSale(lineStores(testenv.ID("st"), 1), []int{60}, nil)
		holds := f.holdN(sale, 60)
		if st := f.stock(sale.ID); st.Remaining != 0 {
			t.Fatalf("remaining %d before the race", st.Remaining)
		}
		before := t0.Add(30 * time.Second) // holds still live: cancel wins if first
		after := t0.Add(61 * time.Second)  // holds past their TTL: expiry wins if first
		var wg sync.WaitGroup
		var mu sync.Mutex
		outcomes := map[string]int{}
		for i, h := range holds {
			wg.Go(func() {
				_, err := f.ledger.Cancel(f.ctx, sale.ID, h.ID, engine.Actor{UserID: h.UserID}, before)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					outcomes["cancel"]++
				case errors.Is(err, engine.ErrHoldExpired):
					outcomes["cancel-too-late"]++
				default:
					t.Errorf("cancel %s: %v", h.ID, err)
				}
			})
			if i%10 == 0 {
				wg.Go(func() {
					if _, _, err := f.ledger.ExpireDue(f.ctx, sale.ID, after, 7); err != nil {
						t.Error(err)
					}
				})
			}
		}
		wg.Wait()
		f.clock.Set(after)
		if _, err := f.eng.ExpireSale(f.ctx, sale.ID, after); err != nil {
			t.Fatal(err)
		}
		st := f.stock(sale.ID)
		if st.Remaining != 60 || st.Held != 0 {
			t.Fatalf("after the race: remaining %d held %d, want 60 and 0", st.Remaining, st.Held)
		}
		all, err := f.ledger.Holds(f.ctx, sale.ID)
		if err != nil {
			t.Fatal(err)
		}
		ended := map[engine.HoldState]int{}
		for _, h := range all {
			ended[h.State]++
		}
		if ended[engine.HoldCancelled] != outcomes["cancel"] || ended[engine.HoldExpired] != 60-outcomes["cancel"] {
			t.Fatalf("states %v, cancel outcomes %v", ended, outcomes)
		}
		// Exactly one terminal event per hold.
		terminal := map[string]int{}
		for _, id := range f.events(sale.ID) {
			terminal[id]++
		}
		for _, h := range holds {
			c, e := terminal[h.ID+":cancelled"], terminal[h.ID+":expired"]
			if c+e != 1 || terminal[h.ID+":held"] != 1 {
				t.Fatalf("hold %s: %d cancelled, %d expired, %d created events", h.ID, c, e, terminal[h.ID+":held"])
			}
		}
		// Every shopper's count is gone; the hash keeps only its note.
		left, err := f.rdb.HKeys(f.ctx, "{s:"+sale.ID+"}:buyers").Result()
		if err != nil || len(left) != 1 || left[0] != "(about)" {
			t.Fatalf("buyers left: %q %v", left, err)
		}
		t.Logf("race outcomes: %v", outcomes)
	})
}

// TestConfirmCancelRace: for every hold, a confirm and a cancel race; one
// wins, and the stock matches the winner.
func TestConfirmCancelRace(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		sale := f.newSale(lineStores(testenv.ID("st"), 1), []int{40}, nil)
		holds := f.holdN(sale, 40)
		var wg sync.WaitGroup
		var confirmed, cancelled sync.Map
		for _, h := range holds {
			wg.Go(func() {
				if _, err := f.eng.Confirm(f.ctx, h.ID, engine.Actor{StoreID: h.StoreID}); err == nil {
					confirmed.Store(h.ID, true)
				} else if !errors.Is(err, engine.ErrHoldCancelled) {
					t.Errorf("confirm: %v", err)
				}
			})
			wg.Go(func() {
				if _, err := f.eng.Cancel(f.ctx, h.ID, engine.Actor{UserID: h.UserID}); err == nil {
					cancelled.Store(h.ID, true)
				} else if !errors.Is(err, engine.ErrHoldConfirmed) {
					t.Errorf("cancel: %v", err)
				}
			})
		}
		wg.Wait()
		nConf := 0
		for _, h := range holds {
			_, c := confirmed.Load(h.ID)
			_, x := cancelled.Load(h.ID)
			if c == x {
				t.Fatalf("hold %s: confirmed %v cancelled %v, want exactly one", h.ID, c, x)
			}
			if c {
				nConf++
			}
		}
		st := f.stock(sale.ID)
		if st.Confirmed != nConf || st.Remaining != 40-nConf || st.Held != 0 {
			t.Fatalf("stock %+v with %d confirmed", st, nConf)
		}
	})
}

func TestHoldLifecycle(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		sale := f.newSale(lineStores(testenv.ID("st"), 2), []int{3, 0}, nil)
		hs := f.holdN(sale, 3)
		a, b, c := hs[0], hs[1], hs[2]
		other := engine.Actor{StoreID: sale.Stores[1].ID}

		if _, err := f.eng.Confirm(f.ctx, a.ID, other); !errors.Is(err, engine.ErrForbidden) {
			t.Fatalf("confirm by another store: %v", err)
		}
		if _, err := f.eng.Cancel(f.ctx, a.ID, engine.Actor{UserID: "someone-else"}); !errors.Is(err, engine.ErrForbidden) {
			t.Fatalf("cancel by another user: %v", err)
		}
		h, err := f.eng.Confirm(f.ctx, a.ID, engine.Actor{StoreID: a.StoreID})
		if err != nil || h.State != engine.HoldConfirmed {
			t.Fatalf("confirm: %+v %v", h, err)
		}
		if h, err = f.eng.Confirm(f.ctx, a.ID, engine.Actor{}); err != nil || h.State != engine.HoldConfirmed {
			t.Fatalf("confirm again: %+v %v", h, err)
		}
		if _, err = f.eng.Cancel(f.ctx, a.ID, engine.Actor{}); !errors.Is(err, engine.ErrHoldConfirmed) {
			t.Fatalf("cancel confirmed: %v", err)
		}
		if h, err = f.eng.Cancel(f.ctx, b.ID, engine.Actor{}); err != nil || h.State != engine.HoldCancelled {
			t.Fatalf("cancel: %+v %v", h, err)
		}
		if h, err = f.eng.Cancel(f.ctx, b.ID, engine.Actor{}); err != nil || h.State != engine.HoldCancelled {
			t.Fatalf("cancel again: %+v %v", h, err)
		}
		if _, err = f.eng.Confirm(f.ctx, b.ID, engine.Actor{}); !errors.Is(err, engine.ErrHoldCancelled) {
			t.Fatalf("confirm cancelled: %v", err)
		}
		// Past its TTL, c cannot be confirmed: the confirm expires it instead,
		// even before the sweeper runs; a confirmed hold never expires.
		f.clock.Advance(60 * time.Second)
		if _, err = f.eng.Confirm(f.ctx, c.ID, engine.Actor{}); !errors.Is(err, engine.ErrHoldExpired) {
			t.Fatalf("confirm after TTL: %v", err)
		}
		if n, err := f.eng.ExpireDue(f.ctx); err != nil || n != 0 {
			t.Fatalf("sweep: %d %v, want nothing left to expire", n, err)
		}
		if h, err = f.eng.Hold(f.ctx, a.ID); err != nil || h.State != engine.HoldConfirmed {
			t.Fatalf("confirmed hold after TTL: %+v %v", h, err)
		}
		if _, err = f.eng.Hold(f.ctx, sale.ID+".nope"); !errors.Is(err, engine.ErrUnknownHold) {
			t.Fatalf("unknown hold: %v", err)
		}
		if _, err = f.eng.Cancel(f.ctx, "malformed", engine.Actor{}); !errors.Is(err, engine.ErrUnknownHold) {
			t.Fatalf("malformed hold id: %v", err)
		}
		st := f.stock(sale.ID)
		if st.Confirmed != 1 || st.Remaining != 2 || st.Held != 0 {
			t.Fatalf("stock %+v", st)
		}
		want := []string{a.ID + ":held", b.ID + ":held", c.ID + ":held", a.ID + ":confirmed", b.ID + ":cancelled", c.ID + ":expired"}
		if got := f.events(sale.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("outbox events %v, want %v", got, want)
		}
	})
}

func TestSweeperExpiresWithInjectedClock(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		sale := f.newSale(lineStores(testenv.ID("st"), 1), []int{5}, nil)
		f.holdN(sale, 5)
		f.clock.Advance(59 * time.Second)
		if n, err := f.eng.ExpireSale(f.ctx, sale.ID, f.clock.Now()); err != nil || n != 0 {
			t.Fatalf("before TTL: expired %d %v", n, err)
		}
		f.clock.Advance(time.Second)
		if n, err := f.eng.ExpireSale(f.ctx, sale.ID, f.clock.Now()); err != nil || n != 5 {
			t.Fatalf("at TTL: expired %d %v, want 5", n, err)
		}
		if n, err := f.eng.ExpireSale(f.ctx, sale.ID, f.clock.Now()); err != nil || n != 0 {
			t.Fatalf("again: expired %d %v, want 0", n, err)
		}
		if st := f.stock(sale.ID); st.Remaining != 5 {
			t.Fatalf("remaining %d, want 5", st.Remaining)
		}
	})
}

func TestCreateSaleValidation(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		stores := lineStores(testenv.ID("st"), 1)
		sale := f.newSale(stores, []int{2}, nil)
		dup := sale
		dup.Stores = nil
		if _, err := f.eng.CreateSale(f.ctx, dup); !errors.Is(err, engine.ErrSaleExists) {
			t.Fatalf("duplicate sale: %v", err)
		}
		bad := dup
		bad.ID = testenv.ID("sale-")
		bad.Allocations = map[string]int{"no-such-store": 3}
		if _, err := f.eng.CreateSale(f.ctx, bad); !errors.Is(err, engine.ErrInvalid) {
			t.Fatalf("unknown store: %v", err)
		}
		if _, err := f.ledger.Sale(f.ctx, bad.ID); !errors.Is(err, engine.ErrUnknownSale) {
			t.Fatalf("a refused sale was saved: %v", err)
		}
	})
}

// TestScriptsReloadAfterFlush: after SCRIPT FLUSH (as after a restart or
// failover) calls still work.
func TestScriptsReloadAfterFlush(t *testing.T) {
	bothModes(t, func(t *testing.T, f *fixture) {
		sale := f.newSale(lineStores(testenv.ID("st"), 1), []int{2}, nil)
		if err := f.rdb.ScriptFlush(f.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		f.holdN(sale, 1)
		if err := f.ledger.Load(f.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatchSeesEarlierRequests sends one batch in which later requests
// depend on earlier ones: a replay of a hold made in the same batch, the
// per-user limit reached inside it, a store running out and the next one
// taking over, and the sale selling out.
func TestBatchSeesEarlierRequests(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("b-"), 2)
	sale := f.newSale(stores, []int{2, 1}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.1}, {StoreID: stores[1].ID, DistanceKm: 0.70049}}
	req := func(hold, user, key string) engine.LedgerReserve {
		return engine.LedgerReserve{HoldID: sale.ID + "." + hold, UserID: user, Key: key, Quantity: 1, Candidates: cands}
	}
	outs, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(time.Minute), []engine.LedgerReserve{
		req("h1", "u1", "k1"),
		req("h1bis", "u1", "k1"), // replay of h1
		req("h2", "u1", "k2"),    // over u1's limit of 1
		req("h3", "u2", "k1"),    // store 0's second unit
		req("h4", "u3", "k1"),    // store 0 is out: store 1
		req("h5", "u4", "k1"),    // sold out
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(outs))
	for i, o := range outs {
		switch {
		case o.Err != nil:
			got[i] = o.Err.Error()
		case o.Replayed:
			got[i] = "replay " + o.Hold.ID[len(sale.ID)+1:]
		default:
			got[i] = o.Hold.ID[len(sale.ID)+1:] + "@" + o.Hold.StoreID[len(o.Hold.StoreID)-1:]
		}
	}
	want := []string{"h1@0", "replay h1", engine.ErrLimitReached.Error(), "h3@0", "h4@1", engine.ErrSoldOut.Error()}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	// What the batch answered for each hold it created is what it stored:
	// the store of the candidate taken, its distance to the metre, and
	// the expiry.
	for _, i := range []int{0, 3, 4} {
		stored, err := f.ledger.Hold(f.ctx, sale.ID, outs[i].Hold.ID)
		if err != nil {
			t.Fatal(err)
		}
		if outs[i].Hold != stored || !stored.ExpiresAt.Equal(t0.Add(time.Minute+time.Duration(sale.HoldTTLSeconds)*time.Second)) {
			t.Fatalf("request %d answered %+v, stored %+v", i, outs[i].Hold, stored)
		}
	}
	if d := outs[4].Hold.DistanceKm; d != 0.7 {
		t.Fatalf("distance %v at the second candidate, want 0.7 (to the metre)", d)
	}
	st := f.stock(sale.ID)
	if st.Remaining != 0 || st.Held != 3 || st.Stores[stores[0].ID].Held != 2 || st.Stores[stores[1].ID].Held != 1 {
		t.Fatalf("stock %+v", st)
	}
	// The batch's three creations are one stream entry; the outbox reads
	// them as three events sharing it, and one Ack removes it.
	if n, err := f.rdb.XLen(f.ctx, reservation.OutboxKey(sale.ID)).Result(); err != nil || n != 1 {
		t.Fatalf("%d outbox entries (%v), want 1", n, err)
	}
	ob := reservation.NewOutbox(f.rdb, time.Minute)
	entries, err := ob.Read(f.ctx, sale.ID, "test", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		if e.Ref != entries[0].Ref || e.Event.Type != "hold.created" || e.Event.Hold.State != engine.HoldHeld {
			t.Fatalf("entry %+v", e)
		}
		ids = append(ids, e.Event.ID)
	}
	if want := []string{sale.ID + ".h1:held", sale.ID + ".h3:held", sale.ID + ".h4:held"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("outbox events %v, want %v", ids, want)
	}
	if err := ob.Ack(f.ctx, sale.ID, entries); err != nil {
		t.Fatal(err)
	}
	if n, err := ob.Len(f.ctx, sale.ID); err != nil || n != 0 {
		t.Fatalf("%d outbox entries after ack (%v), want 0", n, err)
	}
	// The batch's writes are visible afterwards: a later replay, the
	// buyers' counts and the expiries.
	again, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(time.Minute), []engine.LedgerReserve{req("h9", "u1", "k1"), req("h10", "u2", "k9")})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Replayed || again[0].Hold.ID != sale.ID+".h1" || !errors.Is(again[1].Err, engine.ErrLimitReached) {
		t.Fatalf("after the batch: %+v", again)
	}
	// The batch's three holds share one expiry entry, which lists them.
	expiries, err := f.rdb.ZRangeWithScores(f.ctx, "{s:"+sale.ID+"}:expiry", 0, -1).Result()
	if err != nil || len(expiries) != 1 || expiries[0].Member != "x:"+sale.ID+".h1" ||
		int64(expiries[0].Score) != t0.Add(time.Minute+time.Duration(sale.HoldTTLSeconds)*time.Second).UnixMilli() {
		t.Fatalf("expiry entries %+v (%v), want one for the batch", expiries, err)
	}
	// The list is every request's hold id, as the caller sent them; those
	// of requests that created nothing have no record.
	want = nil
	for _, id := range []string{"h1", "h1bis", "h2", "h3", "h4", "h5"} {
		want = append(want, sale.ID+"."+id)
	}
	if list, err := f.rdb.HGet(f.ctx, "{s:"+sale.ID+"}:holds", "x:"+sale.ID+".h1").Result(); err != nil || list != strings.Join(want, " ") {
		t.Fatalf("batch's expiry list %q (%v)", list, err)
	}
	// After the end, a batch still answers replays and creates nothing.
	late, err := f.ledger.Reserve(f.ctx, sale.ID, sale.EndsAt, []engine.LedgerReserve{req("h11", "u5", "k1"), req("h12", "u3", "k1")})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(late[0].Err, engine.ErrEnded) || !late[1].Replayed || late[1].Hold.ID != sale.ID+".h4" || late[1].Hold.StoreID != stores[1].ID {
		t.Fatalf("after the end: %+v", late)
	}
	// The sweeper expires the three holds of the batch's list, passes over
	// the ids without a record, and gives every unit back.
	expired, more, err := f.ledger.ExpireDue(f.ctx, sale.ID, t0.Add(time.Hour), 100)
	if err != nil || more {
		t.Fatalf("expire: %v (more %v)", err, more)
	}
	var gone []string
	for _, h := range expired {
		gone = append(gone, h.ID[len(sale.ID)+1:])
	}
	if slices.Sort(gone); fmt.Sprint(gone) != "[h1 h3 h4]" {
		t.Fatalf("expired %v, want [h1 h3 h4]", gone)
	}
	if st := f.stock(sale.ID); st.Remaining != 3 || st.Held != 0 {
		t.Fatalf("stock after expiry %+v", st)
	}
}

// TestSaleHashesAreHashTables: a new sale's stock and buyers hashes are
// hash tables from the start, not listpacks Redis scans field by field on
// every lookup of a reservation batch.
func TestSaleHashesAreHashTables(t *testing.T) {
	f := newFixture(t)
	sale := f.newSale(lineStores(testenv.ID("enc"), 3), []int{1, 1, 1}, nil)
	for _, k := range []string{"stock", "buyers"} {
		enc, err := f.rdb.ObjectEncoding(f.ctx, "{s:"+sale.ID+"}:"+k).Result()
		if err != nil || enc != "hashtable" {
			t.Fatalf("%s hash encoded as %q (%v), want hashtable", k, enc, err)
		}
	}
}

// TestExpiryOfABatch expires the holds of one batch, which share one
// expiry entry, after one was confirmed and one cancelled: only the one
// still held expires and gives its unit back, and the entry and its list
// are gone. An entry of a single hold id (as sales created by earlier
// versions have) still expires its hold.
func TestExpiryOfABatch(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("xb-"), 1)
	sale := f.newSale(stores, []int{10}, func(s *engine.Sale) { s.PerUserLimit = 5 })
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.1}}
	var reqs []engine.LedgerReserve
	for i := range 4 {
		reqs = append(reqs, engine.LedgerReserve{HoldID: fmt.Sprintf("%s.h%d", sale.ID, i), UserID: fmt.Sprint("u", i), Key: "k", Quantity: 1, Candidates: cands})
	}
	at := t0.Add(time.Minute)
	outs, err := f.ledger.Reserve(f.ctx, sale.ID, at, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	if _, err := f.ledger.Confirm(f.ctx, sale.ID, sale.ID+".h0", engine.Actor{}, at); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ledger.Cancel(f.ctx, sale.ID, sale.ID+".h1", engine.Actor{}, at); err != nil {
		t.Fatal(err)
	}
	// A single-hold entry, as older versions wrote, for h3: the batch's
	// entry also lists it, and it must expire once.
	key := "{s:" + sale.ID + "}:expiry"
	if err := f.rdb.ZAdd(f.ctx, key, redis.Z{Score: float64(outs[3].Hold.ExpiresAt.UnixMilli()), Member: sale.ID + ".h3"}).Err(); err != nil {
		t.Fatal(err)
	}
	expiry := outs[0].Hold.ExpiresAt
	if got, more, err := f.ledger.ExpireDue(f.ctx, sale.ID, expiry.Add(-time.Millisecond), 100); err != nil || len(got) != 0 || more {
		t.Fatalf("before the expiry: %d expired, more %v (%v)", len(got), more, err)
	}
	got, more, err := f.ledger.ExpireDue(f.ctx, sale.ID, expiry, 100)
	if err != nil || more {
		t.Fatalf("more %v (%v)", more, err)
	}
	var ids []string
	for _, h := range got {
		if h.State != engine.HoldExpired {
			t.Fatalf("expired hold %+v", h)
		}
		ids = append(ids, h.ID)
	}
	slices.Sort(ids)
	if want := []string{sale.ID + ".h2", sale.ID + ".h3"}; !slices.Equal(ids, want) {
		t.Fatalf("expired %v, want %v", ids, want)
	}
	if n, err := f.rdb.ZCard(f.ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("%d expiry entries left (%v)", n, err)
	}
	if n, err := f.rdb.HExists(f.ctx, "{s:"+sale.ID+"}:holds", "x:"+sale.ID+".h0").Result(); err != nil || n {
		t.Fatalf("the batch's list is still there (%v)", err)
	}
	st := f.stock(sale.ID)
	if st.Remaining != 9 || st.Held != 0 || st.Confirmed != 1 {
		t.Fatalf("stock %+v, want 9 left, 0 held, 1 confirmed", st)
	}
	holds, err := f.ledger.Holds(f.ctx, sale.ID)
	if err != nil || len(holds) != 4 {
		t.Fatalf("%d holds (%v), want the 4 records only", len(holds), err)
	}
}

// TestBatchBeyondUnpackLimits sends one batch of 4096 reservations, the
// most the engine's MaxBatch allows: its argument lists are longer than
// Lua unpacks at once (8000 values) and its field lists longer than the
// script's slices (4000), so the script reads and writes them in slices.
func TestBatchBeyondUnpackLimits(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("big-"), 2)
	sale := f.newSale(stores, []int{3000, 1500}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.1}, {StoreID: stores[1].ID, DistanceKm: 0.2}}
	reqs := make([]engine.LedgerReserve, 4096)
	for i := range reqs {
		reqs[i] = engine.LedgerReserve{HoldID: fmt.Sprintf("%s.b%d", sale.ID, i), UserID: fmt.Sprint("u", i), Key: "k", Quantity: 1, Candidates: cands}
	}
	outs, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(time.Minute), reqs)
	if err != nil {
		t.Fatal(err)
	}
	perStore := map[string]int{}
	for i, o := range outs {
		if o.Err != nil || o.Hold.ID != reqs[i].HoldID {
			t.Fatalf("request %d: %+v", i, o)
		}
		perStore[o.Hold.StoreID]++
	}
	if perStore[stores[0].ID] != 3000 || perStore[stores[1].ID] != 1096 {
		t.Fatalf("holds per store %v, want 3000 at the nearest and 1096 at the next", perStore)
	}
	holds, err := f.ledger.Holds(f.ctx, sale.ID)
	if err != nil || len(holds) != 4096 {
		t.Fatalf("%d holds stored (%v), want 4096", len(holds), err)
	}
	if st := f.stock(sale.ID); st.Remaining != 404 || st.Held != 4096 {
		t.Fatalf("stock %+v", st)
	}
	// The batch's one outbox entry lists 4096 ids; the relay reads their
	// records in slices and finds every creation, in order.
	if evs := f.events(sale.ID); len(evs) != 4096 || evs[0] != reqs[0].HoldID+":held" || evs[4095] != reqs[4095].HoldID+":held" {
		t.Fatalf("%d creation events, want 4096 in request order", len(evs))
	}
}

// TestExpiryPastSettledBatches: confirm and cancel leave a batch's expiry
// entry in place, so settled holds can fill a sweep's limit. One sweep
// must still reach a hold still held behind more settled batches than the
// limit (it once stopped at the first call that expired fewer holds than
// the limit, leaving the hold held and its unit locked up).
func TestExpiryPastSettledBatches(t *testing.T) {
	f := newFixtureWith(t, func(cfg *engine.Config) { cfg.SweepBatch = 5 })
	stores := lineStores(testenv.ID("sb-"), 1)
	sale := f.newSale(stores, []int{50}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.1}}
	reserve := func(i int) engine.Hold {
		outs, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(time.Minute), []engine.LedgerReserve{
			{HoldID: fmt.Sprintf("%s.s%d", sale.ID, i), UserID: fmt.Sprint("u", i), Key: "k", Quantity: 1, Candidates: cands}})
		if err != nil || outs[0].Err != nil {
			t.Fatalf("reserve %d: %v %v", i, err, outs[0].Err)
		}
		return outs[0].Hold
	}
	// 20 batches of one, settled (four times the sweep's limit of 5), then
	// one still held, all due at the same time.
	for i := range 20 {
		h := reserve(i)
		var err error
		if i%2 == 0 {
			_, err = f.ledger.Confirm(f.ctx, sale.ID, h.ID, engine.Actor{}, t0.Add(time.Minute))
		} else {
			_, err = f.ledger.Cancel(f.ctx, sale.ID, h.ID, engine.Actor{}, t0.Add(time.Minute))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	live := reserve(20)
	n, err := f.eng.ExpireSale(f.ctx, sale.ID, live.ExpiresAt)
	if err != nil || n != 1 {
		t.Fatalf("one sweep expired %d (%v), want the one hold still held", n, err)
	}
	if h, err := f.ledger.Hold(f.ctx, sale.ID, live.ID); err != nil || h.State != engine.HoldExpired {
		t.Fatalf("hold %+v (%v), want expired", h, err)
	}
	if k, err := f.rdb.ZCard(f.ctx, "{s:"+sale.ID+"}:expiry").Result(); err != nil || k != 0 {
		t.Fatalf("%d expiry entries left (%v)", k, err)
	}
}

// TestOutboxCreationEvents: a batch's creations reach the outbox as the
// holds were made, even when one changed state before the relay read it,
// and entries in the form written before the "ids" list (the records
// themselves) are still read.
func TestOutboxCreationEvents(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("o-"), 1)
	sale := f.newSale(stores, []int{5}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.25}}
	at := t0.Add(time.Minute)
	outs, err := f.ledger.Reserve(f.ctx, sale.ID, at, []engine.LedgerReserve{
		{HoldID: sale.ID + ".a", UserID: "u1", Key: "k", Quantity: 1, Candidates: cands},
		{HoldID: sale.ID + ".b", UserID: "u2", Key: "k", Quantity: 1, Candidates: nil},
		{HoldID: sale.ID + ".c", UserID: "u3", Key: "k", Quantity: 1, Candidates: cands},
	})
	if err != nil || outs[0].Err != nil || !errors.Is(outs[1].Err, engine.ErrNoStoreStock) || outs[2].Err != nil {
		t.Fatalf("reserve: %+v %v", outs, err)
	}
	if _, err := f.ledger.Confirm(f.ctx, sale.ID, sale.ID+".a", engine.Actor{}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// An entry as the previous version wrote it: the records, one per line.
	legacy := outs[2].Hold
	legacy.ID = sale.ID + ".old"
	rec := `{"id":"` + legacy.ID + `","user":"u9","store":"` + stores[0].ID + `","qty":1,"dist":"0.250","state":"held","created":"1000","expires":"2000","updated":"1000"}`
	if err := f.rdb.XAdd(f.ctx, &redis.XAddArgs{Stream: reservation.OutboxKey(sale.ID), Values: []any{"type", "hold.created", "at", "1000", "holds", rec}}).Err(); err != nil {
		t.Fatal(err)
	}
	msgs, err := f.rdb.XRange(f.ctx, reservation.OutboxKey(sale.ID), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := reservation.OutboxEvents(f.ctx, f.rdb, sale.ID, msgs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		h := e.Event.Hold
		if e.Event.Type == "hold.created" && (h.State != engine.HoldHeld || !h.UpdatedAt.Equal(h.CreatedAt)) {
			t.Errorf("creation event of %s carries %+v, want the hold as created", h.ID, h)
		}
		got = append(got, fmt.Sprintf("%s %s q%d", e.Event.ID[len(sale.ID)+1:], e.Event.Type, h.Quantity))
	}
	want := []string{"a:held hold.created q1", "c:held hold.created q1", "a:confirmed hold.confirmed q1", "old:held hold.created q1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if created := entries[0].Event.Hold; created != outs[0].Hold {
		t.Fatalf("creation event %+v, reservation answered %+v", created, outs[0].Hold)
	}
	// A record the batch created gone from the holds hash is an error,
	// not an event silently missing.
	if err := f.rdb.HDel(f.ctx, "{s:"+sale.ID+"}:holds", sale.ID+".c").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := reservation.OutboxEvents(f.ctx, f.rdb, sale.ID, msgs); !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "1 of the 2 holds it created") {
		t.Fatalf("with a record lost: %v", err)
	}
}

// TestLargeBatchRepeatedShopper: in a large batch, a shopper's second
// request, far from the first, still sees it: a second key is over the
// limit, the same key replays the hold.
func TestLargeBatchRepeatedShopper(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("r-"), 1)
	sale := f.newSale(stores, []int{100}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.5}}
	var reqs []engine.LedgerReserve
	for i := range 40 {
		user, key := fmt.Sprint("u", i), "k"
		switch i {
		case 30:
			user, key = "u3", "other"
		case 39:
			user = "u5"
		}
		reqs = append(reqs, engine.LedgerReserve{HoldID: fmt.Sprint(sale.ID, ".h", i), UserID: user, Key: key, Quantity: 1, Candidates: cands})
	}
	outs, err := f.ledger.Reserve(f.ctx, sale.ID, t0.Add(time.Minute), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(outs[30].Err, engine.ErrLimitReached) {
		t.Fatalf("second key of a shopper: %+v, want limit reached", outs[30])
	}
	if !outs[39].Replayed || outs[39].Hold.ID != sale.ID+".h5" {
		t.Fatalf("same key again: %+v, want the replay of h5", outs[39])
	}
	if st := f.stock(sale.ID); st.Held != 38 {
		t.Fatalf("held %d, want 38", st.Held)
	}
}

// TestReserveBatchesOfSeveralSales sends the batches of several sales in
// one call: each is answered as its own Reserve call would be (holds, a
// sold-out sale, a replay, an unknown sale), and after SCRIPT FLUSH (a
// restart or failover) the call loads the script again.
func TestReserveBatchesOfSeveralSales(t *testing.T) {
	f := newFixture(t)
	stores := lineStores(testenv.ID("mb-"), 1)
	a := f.newSale(stores, []int{2}, nil)
	b := f.newSale(stores, []int{1}, nil)
	cands := []engine.Candidate{{StoreID: stores[0].ID, DistanceKm: 0.25}}
	req := func(sale engine.Sale, n int) engine.LedgerReserve {
		return engine.LedgerReserve{HoldID: fmt.Sprintf("%s.h%d", sale.ID, n), UserID: fmt.Sprintf("u%d", n), Key: "k", Quantity: 1, Candidates: cands}
	}
	now := t0.Add(time.Minute)
	outcome := func(o engine.LedgerOutcome) string {
		switch {
		case o.Err != nil:
			return o.Err.Error()
		case o.Replayed:
			return "replay " + o.Hold.ID
		}
		return o.Hold.ID
	}
	for round, flush := range []bool{false, true} {
		if flush {
			if err := f.rdb.ScriptFlush(f.ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		k := 2 * round
		batches := []engine.SaleBatch{
			{SaleID: a.ID, Reqs: []engine.LedgerReserve{req(a, k+1), req(a, k+2)}},
			{SaleID: "no-such-sale", Reqs: []engine.LedgerReserve{req(a, 9)}},
			{SaleID: b.ID, Reqs: []engine.LedgerReserve{req(b, 1), req(b, k+2)}},
		}
		f.ledger.ReserveBatches(f.ctx, now, batches)
		var got []string
		for _, bt := range batches {
			if bt.Err != nil {
				t.Fatalf("round %d: batch of %s failed: %v", round, bt.SaleID, bt.Err)
			}
			for _, o := range bt.Outs {
				got = append(got, outcome(o))
			}
		}
		want := []string{a.ID + ".h1", a.ID + ".h2", engine.ErrUnknownSale.Error(), b.ID + ".h1", engine.ErrSoldOut.Error()}
		if round == 1 {
			// Sale a is sold out now; u1 of sale b replays its hold.
			want = []string{engine.ErrSoldOut.Error(), engine.ErrSoldOut.Error(), engine.ErrUnknownSale.Error(), "replay " + b.ID + ".h1", engine.ErrSoldOut.Error()}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: outcomes %q, want %q", round, got, want)
		}
	}
	for sale, held := range map[string]int{a.ID: 2, b.ID: 1} {
		if st := f.stock(sale); st.Held != held || st.Remaining != 0 {
			t.Fatalf("sale %s: %+v, want %d held and none left", sale, st, held)
		}
		if n := f.outboxLen(sale); n != int64(held) {
			t.Fatalf("sale %s: %d events for %d holds", sale, n, held)
		}
	}
}

// TestConcurrentReserveManySales runs shoppers of many sales at once, so
// that the coalescer sends several sales' batches per round trip: every
// sale sells exactly its stock, once per shopper, and every replay finds
// its hold.
func TestConcurrentReserveManySales(t *testing.T) {
	var most atomic.Int64 // the most sales one round trip carried
	bothModesWith(t, engine.CoalesceConfig{OnCall: keepMost(&most)}, func(t *testing.T, f *fixture) {
		testConcurrentReserveManySales(t, f)
	})
	// 360 shoppers of 12 sales at once, 4 round trips at a time: sales
	// travel together.
	if most.Load() < 2 {
		t.Fatalf("no round trip carried more than %d sale", most.Load())
	}
}

// keepMost returns a CoalesceConfig.OnCall that keeps in most the most
// sales any round trip carried.
func keepMost(most *atomic.Int64) func(int) {
	return func(n int) {
		for m := most.Load(); int64(n) > m && !most.CompareAndSwap(m, int64(n)); m = most.Load() {
		}
	}
}

// testConcurrentReserveManySales runs 360 shoppers of 12 sales at once and
// returns the sales.
func testConcurrentReserveManySales(t *testing.T, f *fixture) []engine.Sale {
	stores := lineStores(testenv.ID("ms-"), 2)
	var sales []engine.Sale
	for i := range 12 {
		sales = append(sales, f.newSale(stores, []int{1 + i%3, 2}, nil))
	}
	const workers = 360
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
			r.res, r.err = f.eng.Reserve(f.ctx, req)
			r.replay, r.rerr = f.eng.Reserve(f.ctx, req)
		})
	}
	close(start)
	wg.Wait()
	sold := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			if !errors.Is(r.err, engine.ErrSoldOut) {
				t.Fatalf("%s: %v", r.sale, r.err)
			}
			if !errors.Is(r.rerr, engine.ErrSoldOut) {
				t.Fatalf("%s: sold out, then %v", r.sale, r.rerr)
			}
			continue
		}
		if r.res.Hold.SaleID != r.sale || r.res.Replayed {
			t.Fatalf("%s: hold %+v", r.sale, r.res)
		}
		if r.rerr != nil || !r.replay.Replayed || r.replay.Hold.ID != r.res.Hold.ID {
			t.Fatalf("%s: replay %+v, %v of hold %s", r.sale, r.replay, r.rerr, r.res.Hold.ID)
		}
		sold[r.sale]++
	}
	for i, sale := range sales {
		want := 1 + i%3 + 2
		st := f.stock(sale.ID)
		if sold[sale.ID] != want || st.Held != want || st.Remaining != 0 {
			t.Fatalf("sale %s: shoppers got %d holds, ledger %+v; want %d", sale.ID, sold[sale.ID], st, want)
		}
		if n := f.outboxLen(sale.ID); n != int64(want) {
			t.Fatalf("sale %s: %d events for %d holds", sale.ID, n, want)
		}
	}
	return sales
}

// TestScriptsAreCalledByTheirSHA: the SHA a script is called by is the one
// Redis keeps it under once loaded. A wrong one would fail no call: every
// call would meet NOSCRIPT and then send the whole source.
func TestScriptsAreCalledByTheirSHA(t *testing.T) {
	rdb, l := testenv.Ledger(t, "sha-")
	if err := l.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	shas := l.ScriptSHAs()
	if len(shas) != 5 {
		t.Fatalf("%d scripts: %v", len(shas), shas)
	}
	for name, sha := range shas {
		exists, err := rdb.ScriptExists(context.Background(), sha).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !exists[0] {
			t.Errorf("script %s: Redis does not know SHA %s after Load", name, sha)
		}
	}
}
