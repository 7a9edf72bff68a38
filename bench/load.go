package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is what one load run measured.
type result struct {
	ops      int64
	errs     int64
	elapsed  time.Duration
	lat      []time.Duration // sorted
	firstErr error
}

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

// op is one request of a scenario; worker is the caller's index, seq a
// number unique over the whole program (so shoppers never repeat).
type op func(ctx context.Context, worker int, seq int64) error

// seq numbers every request of the program.
var seq atomic.Int64

// closedLoop runs op from workers callers as fast as they can for d: the
// peak throughput. Latency is each call's own duration.
func closedLoop(ctx context.Context, workers int, d time.Duration, fn op) result {
	var errs atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, workers)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t := time.Now()
				if err := fn(ctx, w, seq.Add(1)); err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				l = append(l, time.Since(t))
			}
			lats[w] = l
		})
	}
	wg.Wait()
	return collect(lats, time.Since(start), errs.Load(), firstErr)
}

// openLoop offers op at a fixed rate for d, from up to workers callers at
// once. Latency counts from when each call was due, so a stalled system
// shows its queueing (no coordinated omission).
func openLoop(ctx context.Context, workers int, rate float64, d time.Duration, fn op) result {
	var errs atomic.Int64
	var firstErr atomic.Value
	due := make(chan time.Time, workers*64)
	lats := make([][]time.Duration, workers)
	start := time.Now()
	go func() {
		// Wake every half millisecond and hand out every request that has
		// come due, stamped with when it was due: the pacer never spins.
		defer close(due)
		interval := time.Duration(float64(time.Second) / rate)
		next := start
		for next.Sub(start) < d {
			time.Sleep(500 * time.Microsecond)
			now := time.Now()
			for !next.After(now) && next.Sub(start) < d {
				select {
				case due <- next:
				default: // every caller busy and the buffer full: counted as an error
					errs.Add(1)
				}
				next = next.Add(interval)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for t := range due {
				if err := fn(ctx, w, seq.Add(1)); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				l = append(l, time.Since(t))
			}
			lats[w] = l
		})
	}
	wg.Wait()
	return collect(lats, time.Since(start), errs.Load(), firstErr)
}

func collect(lats [][]time.Duration, elapsed time.Duration, errs int64, firstErr atomic.Value) result {
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{ops: int64(len(all)) - errs, errs: errs, elapsed: elapsed, lat: all}
	if r.ops < 0 {
		r.ops = 0
	}
	if e, ok := firstErr.Load().(error); ok {
		r.firstErr = e
	}
	return r
}
