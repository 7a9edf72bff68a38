package engine

import (
	"context"
	"fmt"
	"slices"
)

// AuditReport is what an audit of one sale found.
type AuditReport struct {
	SaleID string
	Stock  Stock
	Holds  int
	Orders int
	// Pending is how many entries still wait in the sale's outbox (one per
	// transition, or one per reserve batch of creations).
	Pending int64
	// Broken lists invariant violations that no pending event can mend.
	Broken []string
	// Lagging lists differences between Redis and PostgreSQL that events
	// still in flight may explain.
	Lagging []string
}

// OK reports whether the sale passed: nothing broken, nothing lagging.
func (r AuditReport) OK() bool { return len(r.Broken) == 0 && len(r.Lagging) == 0 }

// Audit checks a sale's invariants across the stock ledger and the orders
// table: the counts add up per store and globally and match the holds; every
// hold has exactly one order in the same state; no order lacks a hold.
func Audit(saleID string, stock Stock, holds []Hold, orders []Order, pending int64) AuditReport {
	r := AuditReport{SaleID: saleID, Stock: stock, Holds: len(holds), Orders: len(orders), Pending: pending}
	r.Broken = append(r.Broken, stock.Check()...)

	// Counts derived from the hold records must equal the counters.
	type counts struct{ held, confirmed int }
	byStore := map[string]*counts{}
	var global counts
	for _, h := range holds {
		c := byStore[h.StoreID]
		if c == nil {
			c = &counts{}
			byStore[h.StoreID] = c
		}
		switch h.State {
		case HoldHeld:
			c.held += h.Quantity
			global.held += h.Quantity
		case HoldConfirmed:
			c.confirmed += h.Quantity
			global.confirmed += h.Quantity
		}
	}
	if global.held != stock.Held || global.confirmed != stock.Confirmed {
		r.Broken = append(r.Broken, fmt.Sprintf("global: holds say held %d confirmed %d, counters say %d and %d",
			global.held, global.confirmed, stock.Held, stock.Confirmed))
	}
	for id, st := range stock.Stores {
		c := byStore[id]
		if c == nil {
			c = &counts{}
		}
		if c.held != st.Held || c.confirmed != st.Confirmed {
			r.Broken = append(r.Broken, fmt.Sprintf("store %s: holds say held %d confirmed %d, counters say %d and %d",
				id, c.held, c.confirmed, st.Held, st.Confirmed))
		}
	}
	for id := range byStore {
		if _, ok := stock.Stores[id]; !ok {
			r.Broken = append(r.Broken, fmt.Sprintf("store %s has holds but no allocation", id))
		}
	}

	// Every hold exactly one order, in the same state.
	ords := make(map[string]Order, len(orders))
	for _, o := range orders {
		if _, dup := ords[o.ID]; dup {
			r.Broken = append(r.Broken, fmt.Sprintf("hold %s has more than one order", o.ID))
		}
		ords[o.ID] = o
	}
	// A missing or older order may be an event still in flight; the caller
	// decides how long to wait before calling that broken.
	lag := func(msg string) { r.Lagging = append(r.Lagging, msg) }
	for _, h := range holds {
		o, ok := ords[h.ID]
		switch {
		case !ok:
			lag(fmt.Sprintf("hold %s (%s) has no order yet", h.ID, h.State))
		case o.State != h.State:
			if o.State.Rank() > h.State.Rank() {
				r.Broken = append(r.Broken, fmt.Sprintf("order %s is %s but its hold is %s", h.ID, o.State, h.State))
			} else {
				lag(fmt.Sprintf("order %s is %s, its hold %s", h.ID, o.State, h.State))
			}
		case o.StoreID != h.StoreID || o.Quantity != h.Quantity || o.UserID != h.UserID:
			r.Broken = append(r.Broken, fmt.Sprintf("order %s differs from its hold (store, quantity or user)", h.ID))
		}
		delete(ords, h.ID)
	}
	extra := make([]string, 0, len(ords))
	for id := range ords {
		extra = append(extra, id)
	}
	slices.Sort(extra)
	for _, id := range extra {
		r.Broken = append(r.Broken, fmt.Sprintf("order %s has no hold", id))
	}
	return r
}

// String renders the report for people.
func (r AuditReport) String() string {
	s := fmt.Sprintf("sale %s: initial %d, remaining %d, held %d, confirmed %d; %d holds, %d orders, %d outbox entries pending\n",
		r.SaleID, r.Stock.Initial, r.Stock.Remaining, r.Stock.Held, r.Stock.Confirmed, r.Holds, r.Orders, r.Pending)
	for _, b := range r.Broken {
		s += "  BROKEN: " + b + "\n"
	}
	const maxLag = 20
	for i, l := range r.Lagging {
		if i == maxLag {
			s += fmt.Sprintf("  ... and %d more not yet written\n", len(r.Lagging)-maxLag)
			break
		}
		s += "  LAGGING: " + l + "\n"
	}
	if r.OK() {
		s += "  ok: every invariant holds\n"
	}
	return s
}

// AuditSale gathers a sale's orders, holds, counters and outbox backlog and
// audits them. Orders are read first, so that a hold moving on while the
// audit reads shows as lagging, never as broken.
func (e *Engine) AuditSale(ctx context.Context, saleID string,
	orders func(ctx context.Context, saleID string) ([]Order, error),
	pending func(ctx context.Context, saleID string) (int64, error),
) (AuditReport, error) {
	if _, err := e.sale(ctx, saleID); err != nil {
		return AuditReport{}, err
	}
	ords, err := orders(ctx, saleID)
	if err != nil {
		return AuditReport{}, err
	}
	n, err := pending(ctx, saleID)
	if err != nil {
		return AuditReport{}, err
	}
	holds, err := e.ledger.Holds(ctx, saleID)
	if err != nil {
		return AuditReport{}, err
	}
	stock, err := e.ledger.Stock(ctx, saleID)
	if err != nil {
		return AuditReport{}, err
	}
	return Audit(saleID, stock, holds, ords, n), nil
}
