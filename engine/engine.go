package engine

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/flashsale/flashsale/geo"
)

// firstCandidates is how many nearest stores a reservation first offers the
// ledger. Only when all of them are out of stock does the engine offer the
// rest of the stores in reach, so the common case stays small and the rare
// case stays exact.
const firstCandidates = 8

// Config configures an Engine. Ledger is required; the rest have defaults.
type Config struct {
	// Ledger is the atomic stock ledger.
	Ledger Ledger
	// Clock tells the time; SystemClock by default.
	Clock Clock
	// NewID returns a fresh unguessable id for holds and for requests
	// without an idempotency key; 16 random base32 characters by default.
	NewID func() string
	// SweepBatch is about how many holds one expiry call looks at; 500 by
	// default.
	SweepBatch int
	// Coalesce, when set, gathers concurrent reservations of a sale into
	// batched ledger calls (see CoalesceConfig).
	Coalesce *CoalesceConfig
}

func (c *Config) validate() error {
	if c.Ledger == nil {
		return errors.New("engine: config needs a Ledger")
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 500
	}
	return nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RandomID returns 16 characters of base32 from 80 random bits of the
// system's cryptographic generator.
func RandomID() string { return RandomIDAfter("", "") }

// RandomIDAfter returns a, b and a RandomID, joined, made in one
// allocation rather than three.
func RandomIDAfter(a, b string) string {
	var r [10]byte
	readRandom(r[:])
	out := make([]byte, len(a)+len(b)+16)
	copy(out[copy(out, a):], b)
	idEncoding.Encode(out[len(a)+len(b):], r[:])
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is not written again
}

// randomBytes holds random bytes read from crypto/rand in bulk, handed
// out in order: a reservation takes one or two ids, and one read of a
// buffer serves hundreds of them instead of a read each. Bytes are wiped
// as they are handed out, so a buffer holds none that were.
type randomBytes struct {
	b    [4000]byte
	used int
}

var randomPool = sync.Pool{New: func() any { return &randomBytes{used: len(randomBytes{}.b)} }}

// readRandom fills p (at most 4000 bytes) with random bytes.
func readRandom(p []byte) {
	r := randomPool.Get().(*randomBytes)
	r.read(p)
	randomPool.Put(r)
}

func (r *randomBytes) read(p []byte) {
	if r.used+len(p) > len(r.b) {
		_, _ = rand.Read(r.b[:])
		r.used = 0
	}
	n := copy(p, r.b[r.used:])
	clear(r.b[r.used : r.used+n])
	r.used += n
}

// Engine runs the use-cases of flashsale over a Ledger. It is safe for
// concurrent use.
type Engine struct {
	cfg    Config
	ledger Ledger
	clock  Clock
	// idAfter returns a, b and a new id, joined: RandomIDAfter, or with
	// Config.NewID's id.
	idAfter func(a, b string) string

	coalescer *coalescer // nil when coalescing is off

	mu        sync.RWMutex
	sales     map[string]*saleEntry
	putAwayAt time.Time // the last putAwayEnded
}

// saleEntry is a loaded sale with what the hot path needs precomputed.
type saleEntry struct {
	sale   Sale
	stores map[string]Store // nil, as index, once put away (putAwayEnded)
	index  *geo.Index
}

// New returns an Engine, or an error when the config is incomplete.
func New(cfg Config) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, ledger: cfg.Ledger, clock: cfg.Clock, sales: map[string]*saleEntry{}, idAfter: RandomIDAfter}
	if newID := cfg.NewID; newID != nil {
		e.idAfter = func(a, b string) string { return a + b + newID() }
	}
	if cfg.Coalesce != nil {
		e.coalescer = newCoalescer(*cfg.Coalesce, cfg.Ledger, cfg.Clock)
	}
	return e, nil
}

// Now returns the engine's clock reading.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// UpsertStores validates and saves stores. It returns an error wrapping
// ErrInvalid naming the first bad store, and saves nothing in that case.
func (e *Engine) UpsertStores(ctx context.Context, stores []Store) error {
	if len(stores) == 0 {
		return fmt.Errorf("%w: no stores given", ErrInvalid)
	}
	seen := make(map[string]bool, len(stores))
	for _, s := range stores {
		if err := s.Validate(); err != nil {
			return err
		}
		if seen[s.ID] {
			return fmt.Errorf("%w: store %q given twice", ErrInvalid, s.ID)
		}
		seen[s.ID] = true
	}
	return e.ledger.UpsertStores(ctx, stores)
}

// Stores returns every saved store, sorted by id.
func (e *Engine) Stores(ctx context.Context) ([]Store, error) {
	st, err := e.ledger.Stores(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(st, func(a, b Store) int { return strings.Compare(a.ID, b.ID) })
	return st, nil
}

// CreateSale validates a sale, snapshots its stores and saves it with its
// initial stock. It returns ErrInvalid (also for an allocation naming an
// unknown store) or ErrSaleExists.
func (e *Engine) CreateSale(ctx context.Context, s Sale) (Sale, error) {
	if err := s.normalize(); err != nil {
		return Sale{}, err
	}
	all, err := e.ledger.Stores(ctx)
	if err != nil {
		return Sale{}, err
	}
	byID := make(map[string]Store, len(all))
	for _, st := range all {
		byID[st.ID] = st
	}
	s.Stores = s.Stores[:0]
	for id := range s.Allocations {
		st, ok := byID[id]
		if !ok {
			return Sale{}, fmt.Errorf("%w: allocation names unknown store %q", ErrInvalid, id)
		}
		s.Stores = append(s.Stores, st)
	}
	slices.SortFunc(s.Stores, func(a, b Store) int { return strings.Compare(a.ID, b.ID) })
	s.CreatedAt = e.clock.Now().UTC()
	s.StartsAt, s.EndsAt = s.StartsAt.UTC(), s.EndsAt.UTC()
	if err := e.ledger.CreateSale(ctx, s); err != nil {
		return Sale{}, err
	}
	return s, nil
}

// entry returns the cached sale with its stores and their index, loading
// it on first use (or indexing it again, once it was put away: see
// putAwayEnded). Sales are immutable, so a loaded entry never goes stale.
func (e *Engine) entry(ctx context.Context, id string) (*saleEntry, error) {
	e.mu.RLock()
	ent := e.sales[id]
	e.mu.RUnlock()
	if ent != nil && ent.index != nil {
		return ent, nil
	}
	if ent != nil {
		return e.indexSale(id, ent.sale)
	}
	s, err := e.loadSale(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.indexSale(id, s)
}

// loadSale reads sale id from the ledger.
func (e *Engine) loadSale(ctx context.Context, id string) (Sale, error) {
	if !ValidID(id) {
		return Sale{}, ErrUnknownSale
	}
	return e.ledger.Sale(ctx, id)
}

// indexSale caches sale id, s, with its stores by id and their index, and
// returns that entry (or the one another caller cached meanwhile).
func (e *Engine) indexSale(id string, s Sale) (*saleEntry, error) {
	ent := &saleEntry{sale: s, stores: make(map[string]Store, len(s.Stores))}
	items := make([]geo.Item, 0, len(s.Stores))
	for _, st := range s.Stores {
		ent.stores[st.ID] = st
		items = append(items, geo.Item{ID: st.ID, Point: geo.Point{Lat: st.Lat, Lon: st.Lon}})
	}
	var err error
	if ent.index, err = geo.NewIndex(items); err != nil {
		return nil, fmt.Errorf("index stores of sale %q: %w", id, err)
	}
	e.mu.Lock()
	if cur := e.sales[id]; cur != nil && cur.index != nil {
		ent = cur
	} else {
		e.putAwayEnded(e.clock.Now())
		e.sales[id] = ent
	}
	e.mu.Unlock()
	return ent, nil
}

// sale returns the sale id, cached or loaded, without indexing its stores
// when it was put away: what listings and the sweeper's and relay's
// passes over every sale need.
func (e *Engine) sale(ctx context.Context, id string) (Sale, error) {
	e.mu.RLock()
	ent := e.sales[id]
	e.mu.RUnlock()
	if ent != nil {
		return ent.sale, nil
	}
	s, err := e.loadSale(ctx, id)
	if err != nil {
		return Sale{}, err
	}
	// A sale long ended is cached put away from the start: a process
	// starting among thousands of past sales does not index them all.
	if e.clock.Now().Sub(s.EndsAt) > putAwayAfter {
		e.mu.Lock()
		if e.sales[id] == nil {
			e.sales[id] = &saleEntry{sale: s}
		}
		e.mu.Unlock()
		return s, nil
	}
	if _, err := e.indexSale(id, s); err != nil {
		return Sale{}, err
	}
	return s, nil
}

// putAwayAfter is how long after its end a sale keeps what only
// reservations use: its stores by id, their index and the index's cached
// cells. Holds of an ended sale are still picked up, confirmed and
// cancelled, but none is made.
const putAwayAfter = time.Hour

// putAwayEnded drops the stores, index and cached cells of the sales that
// ended more than putAwayAfter before now, and their coalescer queues
// when idle, so that a process serving sale after sale for months does
// not keep every sale's index and cache (whose memory would also lengthen
// every collection). The sale itself stays, for listings and the
// passes over every sale; a reservation or store search of a put-away
// sale indexes it again. It runs when a sale is indexed, at most once a
// minute, so that requests for put-away sales coming in turns index each
// once a minute, not once per request. e.mu is held.
func (e *Engine) putAwayEnded(now time.Time) {
	if now.Sub(e.putAwayAt) < time.Minute {
		return
	}
	e.putAwayAt = now
	for id, ent := range e.sales {
		if now.Sub(ent.sale.EndsAt) <= putAwayAfter {
			continue
		}
		if ent.index != nil {
			e.sales[id] = &saleEntry{sale: ent.sale}
		}
		// Again at every pass: a queue busy at the first is idle later.
		if e.coalescer != nil {
			e.coalescer.forget(id)
		}
	}
}

// SaleStatus returns a sale with its stock snapshot. It returns
// ErrUnknownSale when there is no such sale.
func (e *Engine) SaleStatus(ctx context.Context, id string) (Sale, Stock, error) {
	s, err := e.sale(ctx, id)
	if err != nil {
		return Sale{}, Stock{}, err
	}
	st, err := e.ledger.Stock(ctx, id)
	if err != nil {
		return Sale{}, Stock{}, err
	}
	return s, st, nil
}

// Sales returns every sale, newest start first.
func (e *Engine) Sales(ctx context.Context) ([]Sale, error) {
	ids, err := e.ledger.SaleIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Sale, 0, len(ids))
	for _, id := range ids {
		s, err := e.sale(ctx, id)
		if errors.Is(err, ErrUnknownSale) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Sale) int {
		if c := b.StartsAt.Compare(a.StartsAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// NearbyStore is a store of a sale with the shopper's distance to it and
// its remaining stock.
type NearbyStore struct {
	Store
	DistanceKm float64 `json:"distance_km"`
	Remaining  int     `json:"remaining"`
}

// NearbyStores lists the sale's stores within its maximum distance of p,
// nearest first, with their remaining stock. It returns ErrUnknownSale or
// ErrInvalid for bad coordinates.
func (e *Engine) NearbyStores(ctx context.Context, saleID string, lat, lon float64, limit int) ([]NearbyStore, error) {
	ent, err := e.entry(ctx, saleID)
	if err != nil {
		return nil, err
	}
	if !validLatLon(lat, lon) {
		return nil, fmt.Errorf("%w: coordinates out of range", ErrInvalid)
	}
	cands, err := ent.index.Nearest(geo.Point{Lat: lat, Lon: lon}, ent.sale.MaxDistanceKm, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	st, err := e.ledger.Stock(ctx, saleID)
	if err != nil {
		return nil, err
	}
	out := make([]NearbyStore, 0, len(cands))
	for _, c := range cands {
		out = append(out, NearbyStore{Store: ent.stores[c.ID], DistanceKm: roundKm(c.DistanceKm), Remaining: st.Stores[c.ID].Remaining})
	}
	return out, nil
}

func roundKm(km float64) float64 { return math.Round(km*1000) / 1000 }

// ReserveRequest is a shopper's request for a hold. Either a location
// (HasLocation with Lat and Lon) or a StoreID is required.
type ReserveRequest struct {
	SaleID string
	UserID string
	// IdempotencyKey makes retries safe: the same user and key return the
	// hold the first request created. Empty means no idempotency.
	IdempotencyKey string
	HasLocation    bool
	Lat, Lon       float64
	StoreID        string
	// Quantity defaults to 1.
	Quantity int
}

// Reservation is the result of a successful Reserve.
type Reservation struct {
	Hold      Hold
	StoreName string
	// Replayed is true when the hold was created by an earlier request with
	// the same idempotency key.
	Replayed bool
}

// Reserve takes a hold for a shopper at the nearest store of the sale that
// has stock within the sale's maximum distance (or at the store asked for).
// It returns ErrInvalid, ErrUnknownSale, ErrUnknownStore, ErrNotStarted,
// ErrEnded, ErrSoldOut, ErrNoStoreStock, ErrLimitReached or ErrUnavailable.
func (e *Engine) Reserve(ctx context.Context, r ReserveRequest) (Reservation, error) {
	if r.Quantity == 0 {
		r.Quantity = 1
	}
	switch {
	case !ValidUserID(r.UserID):
		return Reservation{}, fmt.Errorf("%w: user_id must be 1-128 letters, digits or \"_.:@+-\"", ErrInvalid)
	case r.Quantity < 0 || r.Quantity > MaxQuantityPerHold:
		return Reservation{}, fmt.Errorf("%w: quantity must be 1-%d", ErrInvalid, MaxQuantityPerHold)
	case len(r.IdempotencyKey) > 128:
		return Reservation{}, fmt.Errorf("%w: Idempotency-Key must be at most 128 bytes", ErrInvalid)
	case !r.HasLocation && r.StoreID == "":
		return Reservation{}, fmt.Errorf("%w: give lat and lon, or store_id", ErrInvalid)
	case r.HasLocation && !validLatLon(r.Lat, r.Lon):
		return Reservation{}, fmt.Errorf("%w: coordinates out of range", ErrInvalid)
	}
	ent, err := e.entry(ctx, r.SaleID)
	if err != nil {
		return Reservation{}, err
	}
	now := e.clock.Now()
	if now.Before(ent.sale.StartsAt) {
		// Nothing can be held before the start, so there is nothing to
		// replay either: answer without a round trip.
		return Reservation{}, ErrNotStarted
	}
	p := geo.Point{Lat: r.Lat, Lon: r.Lon}
	var cands []Candidate
	if r.StoreID != "" {
		st, ok := ent.stores[r.StoreID]
		if !ok {
			return Reservation{}, ErrUnknownStore
		}
		c := Candidate{StoreID: st.ID}
		if r.HasLocation {
			c.DistanceKm = geo.Haversine(p, geo.Point{Lat: st.Lat, Lon: st.Lon})
		}
		cands = []Candidate{c}
	} else if cands, err = ent.candidates(p, firstCandidates); err != nil {
		return Reservation{}, err
	}
	key := r.IdempotencyKey
	if key == "" {
		// An id of its own, which the shopper never sees: a key they send
		// cannot name it.
		key = e.idAfter("auto-", "")
	}
	lr := LedgerReserve{
		HoldID:     e.idAfter(r.SaleID, "."),
		UserID:     r.UserID,
		Key:        key,
		Quantity:   r.Quantity,
		Candidates: cands,
	}
	out, err := e.reserveOne(ctx, r.SaleID, now, lr)
	if errors.Is(err, ErrNoStoreStock) && r.StoreID == "" && len(cands) == firstCandidates {
		// The nearest stores are out; offer every store in reach. The same
		// hold id and key keep the retry idempotent.
		if lr.Candidates, err = ent.candidates(p, 0); err != nil {
			return Reservation{}, err
		}
		out, err = e.reserveOne(ctx, r.SaleID, now, lr)
	}
	if err != nil {
		return Reservation{}, err
	}
	// With a key of our own, a replay can only be the Redis client's retry
	// of a call whose reply was lost: for the shopper, the hold is new.
	replayed := out.Replayed && r.IdempotencyKey != ""
	return Reservation{Hold: out.Hold, StoreName: ent.stores[out.Hold.StoreID].Name, Replayed: replayed}, nil
}

// candidates returns up to k stores of the sale within its maximum distance
// of p, nearest first (k <= 0: all of them).
func (ent *saleEntry) candidates(p geo.Point, k int) ([]Candidate, error) {
	out, err := geo.NearestAs(ent.index, p, ent.sale.MaxDistanceKm, k, func(it geo.Item, d float64) Candidate {
		return Candidate{StoreID: it.ID, DistanceKm: d}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return out, nil
}

func (e *Engine) reserveOne(ctx context.Context, saleID string, now time.Time, lr LedgerReserve) (LedgerOutcome, error) {
	if e.coalescer != nil {
		return e.coalescer.reserve(ctx, saleID, lr)
	}
	outs, err := e.ledger.Reserve(ctx, saleID, now, []LedgerReserve{lr})
	if err != nil {
		return LedgerOutcome{}, err
	}
	if len(outs) != 1 {
		return LedgerOutcome{}, fmt.Errorf("%w: ledger answered %d outcomes for 1 request", ErrUnavailable, len(outs))
	}
	return outs[0], outs[0].Err
}

// SaleOfHold returns the sale id a hold id belongs to, or ErrUnknownHold
// when the id is malformed.
func SaleOfHold(holdID string) (string, error) {
	i := strings.LastIndexByte(holdID, '.')
	if i <= 0 || i == len(holdID)-1 || !ValidID(holdID[:i]) || len(holdID) > 128 {
		return "", ErrUnknownHold
	}
	return holdID[:i], nil
}

// Hold loads a hold by id. It returns ErrUnknownHold.
func (e *Engine) Hold(ctx context.Context, holdID string) (Hold, error) {
	saleID, err := SaleOfHold(holdID)
	if err != nil {
		return Hold{}, err
	}
	return e.ledger.Hold(ctx, saleID, holdID)
}

// Confirm marks a hold picked up or paid: it becomes an order that keeps
// its stock and can no longer expire. It returns ErrUnknownHold,
// ErrForbidden, ErrHoldCancelled or ErrHoldExpired; confirming twice is a
// no-op.
func (e *Engine) Confirm(ctx context.Context, holdID string, who Actor) (Hold, error) {
	saleID, err := SaleOfHold(holdID)
	if err != nil {
		return Hold{}, err
	}
	return e.ledger.Confirm(ctx, saleID, holdID, who, e.clock.Now())
}

// Cancel releases a hold's units back to its store and the sale. It returns
// ErrUnknownHold, ErrForbidden, ErrHoldConfirmed or ErrHoldExpired;
// cancelling twice is a no-op.
func (e *Engine) Cancel(ctx context.Context, holdID string, who Actor) (Hold, error) {
	saleID, err := SaleOfHold(holdID)
	if err != nil {
		return Hold{}, err
	}
	return e.ledger.Cancel(ctx, saleID, holdID, who, e.clock.Now())
}

// sweepGrace is how long after a sale's last possible expiry the sweeper
// keeps looking at it.
const sweepGrace = 24 * time.Hour

// ExpireDue expires every hold, of every sale, whose time has run out, and
// returns how many it expired. Running it concurrently from several
// processes is safe: each hold expires exactly once.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	ids, err := e.ActiveSaleIDs(ctx)
	if err != nil {
		return 0, err
	}
	now := e.clock.Now()
	total := 0
	var errs []error
	for _, id := range ids {
		n, err := e.ExpireSale(ctx, id, now)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// ExpireSale expires the holds of one sale whose time ran out by now and
// returns how many it expired.
func (e *Engine) ExpireSale(ctx context.Context, saleID string, now time.Time) (int, error) {
	total := 0
	for {
		held, more, err := e.ledger.ExpireDue(ctx, saleID, now, e.cfg.SweepBatch)
		total += len(held)
		if err != nil {
			return total, fmt.Errorf("expire holds of sale %q: %w", saleID, err)
		}
		if !more {
			return total, nil
		}
	}
}

// RunSweeper calls ExpireDue every interval until ctx is done, telling
// onPass (which may be nil) how many holds each pass expired and its error.
// Errors do not stop the loop.
func (e *Engine) RunSweeper(ctx context.Context, interval time.Duration, onPass func(expired int, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := e.ExpireDue(ctx)
			if ctx.Err() != nil {
				return
			}
			if onPass != nil {
				onPass(n, err)
			}
		}
	}
}
