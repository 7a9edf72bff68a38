package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CoalesceConfig turns on request coalescing: concurrent reservations of
// one sale are gathered, first come first served, and sent to the ledger
// as one atomic call that handles each in order. A sale's throughput is
// bound by one Redis shard running one script at a time, so fewer, larger
// calls serve more shoppers.
type CoalesceConfig struct {
	// MaxBatch is the most reservations in one ledger call; 256 by default.
	MaxBatch int
	// MaxWait is how long a batch that is not full waits for company
	// before it is sent, while the sale is busy (its previous call carried
	// more than one reservation): a lone shopper's request is sent at
	// once, and under load each call carries more for the same fixed cost
	// of a script call. 0 (the default) never waits: batches then fill
	// only while earlier calls are in flight.
	MaxWait time.Duration
	// QueueSize bounds the reservations waiting per sale; when it is full,
	// Reserve fails at once with ErrOverloaded. 4096 by default.
	QueueSize int
	// InFlight is how many ledger calls of one sale may run at once; 2 by
	// default, so that one batch crosses the network while Redis runs the
	// other.
	InFlight int
	// CallTimeout bounds one ledger call; 5 s by default.
	CallTimeout time.Duration
	// OnBatch, when set, is told every call's size, duration and error.
	OnBatch func(size int, d time.Duration, err error)
	// OnQueued, when set, is told how long each reservation waited in its
	// sale's queue before the call carrying it was sent.
	OnQueued func(wait time.Duration)
}

func (c *CoalesceConfig) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.InFlight <= 0 {
		c.InFlight = 2
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
}

// coalescer queues reservations per sale and runs them in batches.
type coalescer struct {
	cfg    CoalesceConfig
	ledger Ledger
	clock  Clock

	mu     sync.Mutex
	queues map[string]*saleQueue
	depth  atomic.Int64 // reservations waiting, over every sale
	shed   atomic.Int64 // reservations refused because a queue was full

	onWait func(size int) // tests: told when a batch starts waiting for company
}

type saleQueue struct {
	id       string
	mu       sync.Mutex
	pending  []*queued
	inflight int
	more     chan struct{} // signalled when a request arrives, for MaxWait
	// busy is whether the sale's last call carried more than one
	// reservation: only then does a batch wait for company.
	busy atomic.Bool
}

// queued is one reservation waiting for its batch.
type queued struct {
	at   time.Time // when it was queued
	ctx  context.Context
	req  LedgerReserve
	done chan LedgerOutcome // buffered: the flusher never blocks
}

func newCoalescer(cfg CoalesceConfig, ledger Ledger, clock Clock) *coalescer {
	cfg.defaults()
	return &coalescer{cfg: cfg, ledger: ledger, clock: clock, queues: map[string]*saleQueue{}}
}

func (c *coalescer) queue(saleID string) *saleQueue {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queues[saleID]
	if q == nil {
		q = &saleQueue{id: saleID, more: make(chan struct{}, 1)}
		c.queues[saleID] = q
	}
	return q
}

// reserve queues one reservation and waits for its outcome or for ctx.
func (c *coalescer) reserve(ctx context.Context, saleID string, r LedgerReserve) (LedgerOutcome, error) {
	if err := ctx.Err(); err != nil {
		return LedgerOutcome{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	q := c.queue(saleID)
	item := &queued{at: time.Now(), ctx: ctx, req: r, done: make(chan LedgerOutcome, 1)}
	q.mu.Lock()
	if len(q.pending) >= c.cfg.QueueSize {
		q.mu.Unlock()
		c.shed.Add(1)
		return LedgerOutcome{}, ErrOverloaded
	}
	q.pending = append(q.pending, item)
	c.depth.Add(1)
	start := q.inflight < c.cfg.InFlight
	if start {
		q.inflight++
	}
	q.mu.Unlock()
	select {
	case q.more <- struct{}{}:
	default:
	}
	if start {
		go c.flush(q)
	}
	select {
	case out := <-item.done:
		return out, out.Err
	case <-ctx.Done():
		// A batch that was already sent may still create the hold; the
		// shopper's retry with the same Idempotency-Key gets it back.
		return LedgerOutcome{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// take removes up to MaxBatch waiting reservations whose callers still
// wait; it answers the others with their context's error.
func (c *coalescer) take(q *saleQueue, batch []*queued) []*queued {
	q.mu.Lock()
	n := min(len(q.pending), c.cfg.MaxBatch-len(batch))
	taken := q.pending[:n]
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go
	}
	q.mu.Unlock()
	c.depth.Add(-int64(n))
	for _, it := range taken {
		if err := it.ctx.Err(); err != nil {
			it.done <- LedgerOutcome{Err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			continue
		}
		batch = append(batch, it)
	}
	return batch
}

// flush sends batches of q until it is empty.
func (c *coalescer) flush(q *saleQueue) {
	var batch []*queued
	var reqs []LedgerReserve // grows to the largest batch of this flusher
	for {
		batch = c.take(q, batch[:0])
		if c.cfg.MaxWait > 0 && len(batch) > 0 && len(batch) < c.cfg.MaxBatch && q.busy.Load() {
			if c.onWait != nil {
				c.onWait(len(batch))
			}
			timer := time.NewTimer(c.cfg.MaxWait)
		wait:
			for len(batch) < c.cfg.MaxBatch {
				select {
				case <-q.more:
					batch = c.take(q, batch)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
			batch = c.take(q, batch)
		}
		if len(batch) == 0 {
			q.mu.Lock()
			if len(q.pending) == 0 {
				q.inflight--
				q.mu.Unlock()
				return
			}
			q.mu.Unlock()
			continue
		}
		q.busy.Store(len(batch) > 1)
		reqs = reqs[:0]
		sent := time.Now()
		for _, it := range batch {
			reqs = append(reqs, it.req)
			if c.cfg.OnQueued != nil {
				c.cfg.OnQueued(sent.Sub(it.at))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
		start := time.Now()
		outs, err := c.ledger.Reserve(ctx, q.id, c.clock.Now(), reqs)
		cancel()
		if err == nil && len(outs) != len(reqs) {
			err = fmt.Errorf("%w: ledger answered %d outcomes for %d requests", ErrUnavailable, len(outs), len(reqs))
		}
		if c.cfg.OnBatch != nil {
			c.cfg.OnBatch(len(reqs), time.Since(start), err)
		}
		for i, it := range batch {
			if err != nil {
				it.done <- LedgerOutcome{Err: err}
			} else {
				it.done <- outs[i]
			}
		}
	}
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
