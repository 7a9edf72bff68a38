package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// TickContexts hands out deadline contexts shared by the work that
// starts within one tick (the API's requests, the coalescer's script
// calls): each ends a timeout after its work began, or up to a tick
// later. One timer per tick, instead of a timer started and stopped (and
// five allocations) per request, which showed in the reserve path's
// profile.
type TickContexts struct {
	timeout, tick time.Duration
	cur           atomic.Pointer[tickContext]
}

// NewTickContexts returns TickContexts for work that may last timeout;
// the tick is a sixteenth of it, at most 10 ms.
func NewTickContexts(timeout time.Duration) *TickContexts {
	return &TickContexts{timeout: timeout, tick: max(time.Microsecond, min(10*time.Millisecond, timeout/16))}
}

// Get returns a context whose deadline is at least timeout after now
// (when the work began, from time.Now) and about a tick more at most. The
// deadlines keep now's monotonic clock reading, so a step of the wall
// clock cannot make a context look longer-lived than it is; one that is
// done is never handed out again.
func (r *TickContexts) Get(now time.Time) context.Context {
	want := now.Add(r.timeout)
	if c := r.cur.Load(); c != nil && !c.deadline.Before(want) && c.ctx.Err() == nil {
		return c.ctx
	}
	// Requests racing here may each make one; each is right for the
	// request that made it.
	c := &tickContext{deadline: want.Add(r.tick)}
	c.ctx, c.cancel = context.WithDeadline(context.Background(), c.deadline)
	r.cur.Store(c)
	return c.ctx
}

// tickContext is the context the requests of one tick share. Its cancel
// function is kept and never called, so that no request can end the
// context for the others: it ends at its deadline, when its timer
// releases it. It is a context of the standard library's, so contexts
// that requests derive from it (pgx does) are cancelled with it without a
// goroutine each to watch it.
type tickContext struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}
