package engine

import (
	"context"
	"time"
)

// Candidate is a store a reservation may be taken from, with the shopper's
// distance to it. Candidates are passed nearest first.
type Candidate struct {
	StoreID    string
	DistanceKm float64
}

// LedgerReserve is one reservation attempt as the ledger sees it: the
// engine has already validated it, chosen the hold id and ranked the
// candidate stores.
type LedgerReserve struct {
	HoldID string
	UserID string
	// Key is the idempotency key. A second attempt with the same UserID and
	// Key returns the hold the first one created.
	Key        string
	Quantity   int
	Candidates []Candidate
}

// LedgerOutcome is the ledger's answer to one LedgerReserve: a hold, or Err
// set to one of ErrNotStarted, ErrEnded, ErrSoldOut, ErrNoStoreStock,
// ErrLimitReached or ErrUnknownSale.
type LedgerOutcome struct {
	Hold     Hold
	Replayed bool
	Err      error
}

// SaleBatch is one sale's reservations in a BatchReserver call.
type SaleBatch struct {
	SaleID string
	Reqs   []LedgerReserve
	// Outs (one per request, in order) or Err (the batch failed as a
	// whole) is the answer, set by ReserveBatches.
	Outs []LedgerOutcome
	Err  error
}

// BatchReserver is implemented by a Ledger that can send the reservation
// batches of several sales in one round trip. Every batch is handled as
// Reserve would handle it, atomically and on its own, and answered on its
// own: one batch failing fails no other. The coalescer uses it so that
// many quiet sales, each with a batch of one, do not cost a round trip
// each.
type BatchReserver interface {
	ReserveBatches(ctx context.Context, now time.Time, batches []SaleBatch)
}

// ReserveEach runs batches with one Reserve call of l each, one after the
// other: ReserveBatches for a ledger that has no cheaper way.
func ReserveEach(ctx context.Context, l Ledger, now time.Time, batches []SaleBatch) {
	for i := range batches {
		b := &batches[i]
		b.Outs, b.Err = l.Reserve(ctx, b.SaleID, now, b.Reqs)
	}
}

// Actor says who asks for a confirm or cancel. An empty field is not
// checked; a set field must match the hold or the ledger returns
// ErrForbidden.
type Actor struct {
	UserID  string
	StoreID string
}

// Ledger is the atomic stock ledger the engine runs on. Every method is
// atomic on its own; Reserve, Confirm, Cancel and ExpireDue are idempotent.
// Implementations translate their infrastructure errors into ErrUnavailable
// or the sentinel errors named on each method.
type Ledger interface {
	// UpsertStores saves stores, replacing those with the same id.
	UpsertStores(ctx context.Context, stores []Store) error
	// Stores returns every saved store.
	Stores(ctx context.Context) ([]Store, error)
	// CreateSale saves a validated sale and its initial stock; ErrSaleExists
	// when the id is taken.
	CreateSale(ctx context.Context, s Sale) error
	// Sale loads a sale; ErrUnknownSale when there is none.
	Sale(ctx context.Context, id string) (Sale, error)
	// SaleIDs lists the ids of every sale.
	SaleIDs(ctx context.Context) ([]string, error)
	// Reserve runs reservations of one sale in order, in one atomic step,
	// and returns one outcome per request.
	Reserve(ctx context.Context, saleID string, now time.Time, reqs []LedgerReserve) ([]LedgerOutcome, error)
	// Confirm turns a live hold into a confirmed one that keeps its stock.
	// It returns ErrUnknownHold, ErrForbidden, ErrHoldCancelled or
	// ErrHoldExpired (also when the hold's time ran out and this call
	// expired it). Confirming a confirmed hold returns it unchanged.
	Confirm(ctx context.Context, saleID, holdID string, who Actor, now time.Time) (Hold, error)
	// Cancel releases a live hold's stock. It returns ErrUnknownHold,
	// ErrForbidden, ErrHoldConfirmed or ErrHoldExpired. Cancelling a
	// cancelled hold returns it unchanged.
	Cancel(ctx context.Context, saleID, holdID string, who Actor, now time.Time) (Hold, error)
	// ExpireDue expires holds whose time ran out by now and returns them.
	// One call looks at about max holds (an implementation that keeps one
	// expiry entry for several holds may go past max by one entry's), some
	// of which may be settled already and are passed over; more reports
	// that due holds may remain, for another call.
	ExpireDue(ctx context.Context, saleID string, now time.Time, max int) (expired []Hold, more bool, err error)
	// Hold loads one hold; ErrUnknownHold when there is none.
	Hold(ctx context.Context, saleID, holdID string) (Hold, error)
	// Holds returns every hold of a sale.
	Holds(ctx context.Context, saleID string) ([]Hold, error)
	// Stock reads the sale's counts in one snapshot; ErrUnknownSale when
	// there is none.
	Stock(ctx context.Context, saleID string) (Stock, error)
}

// Clock tells the time. Tests inject one they can move.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
