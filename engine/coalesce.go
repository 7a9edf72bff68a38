package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CoalesceConfig turns on request coalescing: concurrent reservations of
// one sale are gathered, first come first served, and sent to the ledger
// as one atomic call that handles each in order. A sale's throughput is
// bound by one Redis shard running one script at a time, so fewer, larger
// calls serve more shoppers. When the ledger is a BatchReserver, the
// batches of several sales that are ready at once also travel together,
// in one round trip (each still its own atomic call), so that many quiet
// sales do not pay a round trip per reservation.
type CoalesceConfig struct {
	// MaxBatch is the most reservations in one ledger call; 256 by default.
	MaxBatch int
	// MaxWait is how long a batch that is not full waits for company
	// before it is sent, while the sale is busy (its previous call carried
	// more than one reservation): a lone shopper's request is sent at
	// once, and under load each call carries more for the same fixed cost
	// of a script call. 0 (the default) never waits: batches then fill
	// only while earlier calls are in flight. A batch that waits travels
	// alone, without other sales' batches.
	MaxWait time.Duration
	// QueueSize bounds the reservations waiting per sale; when it is full,
	// Reserve fails at once with ErrOverloaded. 4096 by default.
	QueueSize int
	// InFlight is how many ledger calls of one sale may run at once; 2 by
	// default, so that one batch crosses the network while Redis runs the
	// other.
	InFlight int
	// Calls is how many round trips to the ledger may run at once over
	// every sale; 2×InFlight by default, and never fewer than InFlight.
	Calls int
	// MaxSales is the most sales whose batches share one round trip; 64
	// by default. It has no effect when the ledger is not a BatchReserver.
	MaxSales int
	// CallTimeout bounds one ledger call; 5 s by default.
	CallTimeout time.Duration
	// OnBatch, when set, is told every batch's size, the duration of the
	// round trip that carried it and the batch's error.
	OnBatch func(size int, d time.Duration, err error)
	// OnQueued, when set, is told how long each reservation waited in its
	// sale's queue before the call carrying it was sent.
	OnQueued func(wait time.Duration)
	// OnCall, when set, is told how many sales' batches each round trip
	// carried.
	OnCall func(sales int)
}

// WithDefaults returns c with every unset field at its default, as the
// engine runs it.
func (c CoalesceConfig) WithDefaults() CoalesceConfig {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.InFlight <= 0 {
		c.InFlight = 2
	}
	if c.Calls <= 0 {
		c.Calls = 2 * c.InFlight
	}
	c.Calls = max(c.Calls, c.InFlight)
	if c.MaxSales <= 0 {
		c.MaxSales = 64
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
	return c
}

// coalescer queues reservations per sale and runs them in batches. Sales
// with reservations waiting and a call to spare line up in ready, in the
// order they became so; up to Calls dispatchers take sales from its head,
// a batch of each, and send them in one round trip.
type coalescer struct {
	cfg   CoalesceConfig
	clock Clock
	// reserveBatches runs a round's batches: the ledger's ReserveBatches,
	// or ReserveEach for a ledger without one (whose rounds then carry one
	// sale each).
	reserveBatches func(ctx context.Context, now time.Time, batches []SaleBatch)
	maxSales       int // sales per round
	// calls are the calls' contexts, CallTimeout long: the calls that
	// start within one tick share one, and its timer.
	calls *TickContexts

	mu      sync.Mutex // guards queues, ready, running and every saleQueue
	queues  map[string]*saleQueue
	ready   []*saleQueue
	running int // dispatchers

	depth atomic.Int64 // reservations waiting, over every sale
	shed  atomic.Int64 // reservations refused because a queue was full

	onWait func(size int) // tests: told when a batch starts waiting for company
}

// saleQueue is one sale's waiting reservations; c.mu guards it.
type saleQueue struct {
	id       string
	pending  []*queued
	inflight int
	ready    bool          // in c.ready
	more     chan struct{} // with MaxWait: signalled when a reservation arrives
	// busy is whether the sale's last call carried more than one
	// reservation: only then does a batch wait for company.
	busy bool
}

// queued is one reservation waiting for its batch.
type queued struct {
	at   time.Time // when it was queued
	ctx  context.Context
	req  LedgerReserve
	done chan LedgerOutcome // buffered: the dispatcher never blocks
}

// queuedPool keeps answered reservations' records and channels for the
// next ones: a sale's burst would otherwise make two objects per request.
var queuedPool = sync.Pool{New: func() any { return &queued{done: make(chan LedgerOutcome, 1)} }}

// release puts item back in queuedPool, keeping only its channel. Only for
// an item no dispatcher will answer any more.
func (item *queued) release() {
	*item = queued{done: item.done}
	queuedPool.Put(item)
}

func newCoalescer(cfg CoalesceConfig, ledger Ledger, clock Clock) *coalescer {
	cfg = cfg.WithDefaults()
	c := &coalescer{cfg: cfg, clock: clock, queues: map[string]*saleQueue{}, maxSales: cfg.MaxSales, calls: NewTickContexts(cfg.CallTimeout)}
	if many, ok := ledger.(BatchReserver); ok {
		c.reserveBatches = many.ReserveBatches
	} else {
		c.reserveBatches = func(ctx context.Context, now time.Time, batches []SaleBatch) { ReserveEach(ctx, ledger, now, batches) }
		c.maxSales = 1
	}
	if cfg.MaxWait > 0 {
		c.maxSales = 1 // a batch that waits for company travels alone
	}
	return c
}

// reserve queues one reservation and waits for its outcome or for ctx.
func (c *coalescer) reserve(ctx context.Context, saleID string, r LedgerReserve) (LedgerOutcome, error) {
	if err := ctx.Err(); err != nil {
		return LedgerOutcome{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	item := queuedPool.Get().(*queued)
	item.at, item.ctx, item.req = time.Now(), ctx, r
	c.mu.Lock()
	q := c.queues[saleID]
	if q == nil {
		q = &saleQueue{id: saleID}
		if c.cfg.MaxWait > 0 {
			q.more = make(chan struct{}, 1)
		}
		c.queues[saleID] = q
	}
	if len(q.pending) >= c.cfg.QueueSize {
		c.mu.Unlock()
		c.shed.Add(1)
		item.release()
		return LedgerOutcome{}, ErrOverloaded
	}
	q.pending = append(q.pending, item)
	c.depth.Add(1)
	start := c.markReady(q)
	c.mu.Unlock()
	if q.more != nil {
		select {
		case q.more <- struct{}{}:
		default:
		}
	}
	if start {
		go c.dispatch()
	}
	select {
	case out := <-item.done:
		item.release() // answered: the dispatcher is done with it
		return out, out.Err
	case <-ctx.Done():
		// item stays out of the pool: its answer may still come.
		// A batch that was already sent may still create the hold; the
		// shopper's retry with the same Idempotency-Key gets it back.
		return LedgerOutcome{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// forget drops the queue of a sale that no reservation waits for or is
// being sent for; a later reservation of the sale makes a new one.
func (c *coalescer) forget(saleID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[saleID]; q != nil && len(q.pending) == 0 && q.inflight == 0 && !q.ready {
		delete(c.queues, saleID)
	}
}

// markReady lines q up for a dispatcher when it has reservations waiting
// and a call to spare. It reports whether the caller must start a
// dispatcher. c.mu is held.
func (c *coalescer) markReady(q *saleQueue) bool {
	if q.ready || len(q.pending) == 0 || q.inflight >= c.cfg.InFlight {
		return false
	}
	q.ready = true
	c.ready = append(c.ready, q)
	if c.running >= c.cfg.Calls {
		return false
	}
	c.running++
	return true
}

// round is what one dispatcher sends in one round trip: a batch of each
// of up to MaxSales sales.
type round struct {
	queues []*saleQueue
	items  [][]*queued // taken from each of queues
	// What is sent: a batch per sale whose callers still wait, the
	// reservations it answers, every batch's requests back to back.
	batches []SaleBatch
	sent    [][]*queued
	reqs    []LedgerReserve
}

// takeRound takes sales from the head of c.ready, and the waiting
// reservations of each, up to MaxBatch. c.mu is held.
func (c *coalescer) takeRound(r *round) {
	n := min(len(c.ready), c.maxSales)
	r.queues = append(r.queues[:0], c.ready[:n]...)
	clear(c.ready[:n])
	c.ready = c.ready[n:]
	if len(c.ready) == 0 {
		c.ready = nil // let the backing array go
	}
	for len(r.items) < n {
		r.items = append(r.items, nil)
	}
	r.items = r.items[:n]
	var start int
	for i, q := range r.queues {
		q.ready = false
		q.inflight++
		r.items[i] = c.take(q, r.items[i][:0])
		if c.markReady(q) {
			start++
		}
	}
	for ; start > 0; start-- {
		go c.dispatch()
	}
}

// take moves up to MaxBatch waiting reservations of q (less those already
// in batch) into batch. c.mu is held.
func (c *coalescer) take(q *saleQueue, batch []*queued) []*queued {
	n := min(len(q.pending), c.cfg.MaxBatch-len(batch))
	batch = append(batch, q.pending[:n]...)
	clear(q.pending[:n])
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil
	}
	c.depth.Add(-int64(n))
	return batch
}

// live answers the reservations of batch whose callers stopped waiting
// with their context's error, and returns the others.
func live(batch []*queued) []*queued {
	kept := batch[:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.done <- LedgerOutcome{Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			continue
		}
		kept = append(kept, it)
	}
	clear(batch[len(kept):])
	return kept
}

// waitForCompany lets the one sale of r, while busy, gather reservations
// up to MaxBatch or until MaxWait has passed, and then records whether it
// is busy (its batch has more than one).
func (c *coalescer) waitForCompany(r *round) {
	q := r.queues[0]
	defer func() {
		c.mu.Lock()
		q.busy = len(r.items[0]) > 1
		c.mu.Unlock()
	}()
	c.mu.Lock()
	wait := q.busy && len(r.items[0]) < c.cfg.MaxBatch
	c.mu.Unlock()
	if !wait {
		return
	}
	if c.onWait != nil {
		c.onWait(len(r.items[0]))
	}
	timer := time.NewTimer(c.cfg.MaxWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		r.items[0] = c.take(q, r.items[0])
		full := len(r.items[0]) >= c.cfg.MaxBatch
		c.mu.Unlock()
		if full {
			return
		}
		select {
		case <-q.more:
		case <-timer.C:
			c.mu.Lock()
			r.items[0] = c.take(q, r.items[0])
			c.mu.Unlock()
			return
		}
	}
}

// roundPool keeps rounds, and the slices they grew, for the next
// dispatcher: a dispatcher ends when no sale is ready, which between the
// bursts of a sale is often.
var roundPool = sync.Pool{New: func() any { return new(round) }}

// dispatch sends rounds until no sale is ready.
func (c *coalescer) dispatch() {
	r := roundPool.Get().(*round)
	defer func() {
		clear(r.queues)
		roundPool.Put(r)
	}()
	for {
		c.mu.Lock()
		if len(c.ready) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		c.takeRound(r)
		c.mu.Unlock()
		if c.cfg.MaxWait > 0 {
			c.waitForCompany(r)
		}
		c.send(r)
		c.mu.Lock()
		for i, q := range r.queues {
			q.inflight--
			// A sale at its InFlight limit that gathered reservations
			// meanwhile lines up again.
			if c.markReady(q) {
				go c.dispatch()
			}
			clear(r.items[i])
		}
		c.mu.Unlock()
	}
}

// send makes r's ledger call and answers every reservation in it.
func (c *coalescer) send(r *round) {
	r.batches, r.sent = r.batches[:0], r.sent[:0]
	total := 0
	for i, q := range r.queues {
		if items := live(r.items[i]); len(items) > 0 {
			r.batches = append(r.batches, SaleBatch{SaleID: q.id})
			r.sent = append(r.sent, items)
			total += len(items)
		}
	}
	if total == 0 {
		return
	}
	start := time.Now()
	r.reqs = slices.Grow(r.reqs[:0], total)
	for k, items := range r.sent {
		from := len(r.reqs)
		for _, it := range items {
			r.reqs = append(r.reqs, it.req)
			if c.cfg.OnQueued != nil {
				c.cfg.OnQueued(start.Sub(it.at))
			}
		}
		r.batches[k].Reqs = r.reqs[from:len(r.reqs):len(r.reqs)]
	}
	c.reserveBatches(c.calls.Get(start), c.clock.Now(), r.batches)
	d := time.Since(start)
	if c.cfg.OnCall != nil {
		c.cfg.OnCall(len(r.batches))
	}
	for k, items := range r.sent {
		b := &r.batches[k]
		err := b.Err
		if err == nil && len(b.Outs) != len(b.Reqs) {
			err = fmt.Errorf("%w: ledger answered %d outcomes for %d requests", ErrUnavailable, len(b.Outs), len(b.Reqs))
		}
		if c.cfg.OnBatch != nil {
			c.cfg.OnBatch(len(b.Reqs), d, err)
		}
		for j, it := range items {
			if err != nil {
				it.done <- LedgerOutcome{Err: err}
			} else {
				it.done <- b.Outs[j]
			}
		}
	}
	clear(r.batches)
	clear(r.sent)
	clear(r.reqs) // let the requests' strings go
}

// CoalesceStats is what the coalescer is doing, for metrics.
type CoalesceStats struct {
	// Queued is how many reservations wait for a batch, over every sale.
	Queued int64
	// Shed is how many reservations were refused with ErrOverloaded.
	Shed int64
}

// CoalesceStats returns the coalescer's counters; zero when coalescing is
// off.
func (e *Engine) CoalesceStats() CoalesceStats {
	if e.coalescer == nil {
		return CoalesceStats{}
	}
	return CoalesceStats{Queued: e.coalescer.depth.Load(), Shed: e.coalescer.shed.Load()}
}
