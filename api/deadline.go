package api

import (
	"context"
	"sync/atomic"
	"time"
)

// requestContexts hands out the contexts requests run under: each ends
// RequestTimeout after its request began, or up to a tick later, and the
// requests of one tick share it. One timer per tick, instead of a
// timer started and stopped (and five allocations) per request, which
// showed in the reserve path's profile.
type requestContexts struct {
	timeout, tick time.Duration
	cur           atomic.Pointer[sharedDeadline]
}

func newRequestContexts(timeout time.Duration) *requestContexts {
	return &requestContexts{timeout: timeout, tick: max(time.Microsecond, min(10*time.Millisecond, timeout/16))}
}

// get returns a context whose deadline is at least timeout after now
// (the request's start, from time.Now) and about a tick more at most. The
// deadlines keep now's monotonic clock reading, so a step of the wall
// clock cannot make a context look longer-lived than it is; one that is
// done is never handed out again.
func (r *requestContexts) get(now time.Time) context.Context {
	want := now.Add(r.timeout)
	if c := r.cur.Load(); c != nil && !c.deadline.Before(want) && c.Err() == nil {
		return c
	}
	// Requests racing here may each make one; each is right for the
	// request that made it.
	c := newSharedDeadline(want.Add(r.tick))
	r.cur.Store(c)
	return c
}

// sharedDeadline is a context that is done at its deadline and never
// before: it has no cancel function, so no request can end it for the
// others sharing it.
type sharedDeadline struct {
	deadline time.Time
	done     chan struct{}
}

func newSharedDeadline(deadline time.Time) *sharedDeadline {
	c := &sharedDeadline{deadline: deadline, done: make(chan struct{})}
	time.AfterFunc(time.Until(deadline), func() { close(c.done) })
	return c
}

func (c *sharedDeadline) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *sharedDeadline) Done() <-chan struct{}       { return c.done }
func (c *sharedDeadline) Value(any) any               { return nil }

func (c *sharedDeadline) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
