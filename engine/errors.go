package engine

import "errors"

// Sentinel errors of the domain. Adapters translate infrastructure errors into
// these at their edge; the API maps each to one HTTP status and a stable code.
var (
	// ErrInvalid reports malformed input: a missing field, an out-of-range
	// coordinate, a non-positive quantity, an unknown store in an allocation.
	ErrInvalid = errors.New("invalid request")
	// ErrUnknownSale reports a sale id that does not exist.
	ErrUnknownSale = errors.New("unknown sale")
	// ErrUnknownStore reports a store id that does not exist or does not take
	// part in the sale.
	ErrUnknownStore = errors.New("unknown store")
	// ErrUnknownHold reports a hold id that does not exist.
	ErrUnknownHold = errors.New("unknown hold")
	// ErrSaleExists reports an attempt to create a sale whose id is taken.
	ErrSaleExists = errors.New("sale exists")
	// ErrNotStarted reports a reservation before the sale's start.
	ErrNotStarted = errors.New("sale not started")
	// ErrEnded reports a reservation at or after the sale's end.
	ErrEnded = errors.New("sale ended")
	// ErrSoldOut reports that the sale's global stock is gone.
	ErrSoldOut = errors.New("sold out")
	// ErrNoStoreStock reports that no store within the sale's maximum
	// distance of the shopper has stock left, although the sale has.
	ErrNoStoreStock = errors.New("no store stock within reach")
	// ErrLimitReached reports that the shopper would exceed the sale's
	// per-user limit.
	ErrLimitReached = errors.New("per-user limit reached")
	// ErrHoldExpired reports an operation on a hold that has expired.
	ErrHoldExpired = errors.New("hold expired")
	// ErrHoldCancelled reports an operation on a hold that was cancelled.
	ErrHoldCancelled = errors.New("hold cancelled")
	// ErrHoldConfirmed reports an attempt to cancel a confirmed hold.
	ErrHoldConfirmed = errors.New("hold confirmed")
	// ErrForbidden reports a caller acting on something that is not theirs.
	ErrForbidden = errors.New("forbidden")
	// ErrOverloaded reports that the engine shed the request instead of
	// queueing it without bound.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnavailable reports that a backing service did not answer.
	ErrUnavailable = errors.New("backend unavailable")
)
