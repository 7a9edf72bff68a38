package engine

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRequestContexts: requests of one tick share a context whose deadline
// is at least the timeout and at most a tick more after each began, on the
// monotonic clock; a request past the shared deadline's reach gets a new
// one; the context is done at its deadline, with the error of a deadline,
// and not before, and a done one is never handed out again.
func TestRequestContexts(t *testing.T) {
	rc := NewTickContexts(160 * time.Millisecond) // tick 10 ms
	t0 := time.Now()
	a := rc.Get(t0)
	b := rc.Get(t0.Add(time.Millisecond))
	if a != b {
		t.Fatal("two requests a millisecond apart do not share a context")
	}
	for i, c := range []context.Context{a, b} {
		d, ok := c.Deadline()
		began := t0.Add(time.Duration(i) * time.Millisecond)
		if !ok || d.Before(began.Add(rc.timeout)) || d.After(began.Add(rc.timeout+rc.tick)) {
			t.Fatalf("request %d: deadline %v after it began, want [%v, %v]", i, d.Sub(began), rc.timeout, rc.timeout+rc.tick)
		}
		if !strings.Contains(d.String(), " m=") {
			t.Fatalf("deadline %v has no monotonic clock reading: a wall clock step would move it", d)
		}
	}
	da, _ := a.Deadline()
	later := da.Add(-rc.timeout).Add(time.Millisecond) // its own deadline is past a's
	c := rc.Get(later)
	if dc, _ := c.Deadline(); !dc.After(da) || c == a {
		t.Fatalf("a request beginning %v after a's start shares a deadline %v", later.Sub(t0), dc)
	}
	if a.Err() != nil {
		t.Fatalf("done before its deadline: %v", a.Err())
	}
	select {
	case <-a.Done():
		if !errors.Is(a.Err(), context.DeadlineExceeded) || time.Now().Before(da) {
			t.Fatalf("done at %v before the deadline, err %v", time.Until(da), a.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not done 5 s after its deadline")
	}
	if a.Value("anything") != nil {
		t.Fatal("a request context carries no values")
	}
	// A context that is done is not handed out again, whatever its
	// deadline says.
	done := &tickContext{deadline: time.Now().Add(time.Hour)}
	done.ctx, done.cancel = context.WithCancel(context.Background())
	done.cancel()
	rc.cur.Store(done)
	if got := rc.Get(time.Now()); got == done.ctx || got.Err() != nil {
		t.Fatalf("handed out a done context: %v", got.Err())
	}
}

// TestRequestContextChildren: contexts derived from a request's context,
// as pgx and go-redis derive them, are cancelled with it and do not need a
// goroutine each to watch it.
func TestRequestContextChildren(t *testing.T) {
	rc := NewTickContexts(50 * time.Millisecond)
	parent := rc.Get(time.Now())
	before := runtime.NumGoroutine()
	const n = 1000
	children := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	for i := range children {
		children[i], cancels[i] = context.WithCancel(parent)
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	if grown := runtime.NumGoroutine() - before; grown > n/2 {
		t.Fatalf("%d derived contexts started %d goroutines", n, grown)
	}
	for i, c := range children {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("derived context %d not done 5 s after its parent's deadline", i)
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("derived context %d: %v, want the deadline's error", i, c.Err())
		}
	}
}
