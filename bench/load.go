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

// warmup is run before every measurement and not counted: goroutines,
// connections and buffers are set up, and the runtime has settled.
const warmup = 300 * time.Millisecond

// recorder collects the latencies and errors of one run from many callers.
type recorder struct {
	lats     [][]time.Duration
	errs     atomic.Int64
	firstErr atomic.Pointer[error] // not an atomic.Value: errors of different types would panic it
}

func newRecorder(workers int) *recorder {
	r := &recorder{lats: make([][]time.Duration, workers)}
	for w := range r.lats {
		r.lats[w] = make([]time.Duration, 0, 1<<12)
	}
	return r
}

func (r *recorder) record(w int, lat time.Duration, err error) {
	if err != nil {
		r.errs.Add(1)
		r.firstErr.CompareAndSwap(nil, &err)
	}
	r.lats[w] = append(r.lats[w], lat)
}

func (r *recorder) result(elapsed time.Duration) result {
	var all []time.Duration
	for _, l := range r.lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := result{errs: r.errs.Load(), elapsed: elapsed, lat: all}
	res.ops = max(0, int64(len(all))-res.errs)
	if e := r.firstErr.Load(); e != nil {
		res.firstErr = *e
	}
	return res
}

// closedLoop runs op from workers callers as fast as they can for d, after
// a warm-up: the peak throughput. Latency is each call's own duration.
func closedLoop(ctx context.Context, workers int, d time.Duration, fn op) result {
	rec := newRecorder(workers)
	begin := time.Now()
	measureFrom := begin.Add(warmup)
	ctx, cancel := context.WithDeadline(ctx, measureFrom.Add(d))
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				err := fn(ctx, w, seq.Add(1))
				if ctx.Err() != nil {
					break // cut off by the end of the run: not a result
				}
				if t.After(measureFrom) {
					rec.record(w, time.Since(t), err)
				}
			}
		})
	}
	wg.Wait()
	return rec.result(d)
}

// openLoop offers op at a fixed rate for d, after a warm-up at the same
// rate, from workers callers. The k-th request is due at a fixed time; a
// free caller takes the next due request and waits for its time, or sends
// it at once when it is late. Latency counts from when each request was
// due, so a stalled system shows its queueing (no coordinated omission).
// There is no pacer goroutine and no hand-off: a caller only sleeps when it
// is ahead of the schedule.
func openLoop(ctx context.Context, workers int, rate float64, d time.Duration, fn op) result {
	rec := newRecorder(workers)
	interval := time.Duration(float64(time.Second) / rate)
	begin := time.Now()
	measureFrom, end := begin.Add(warmup), begin.Add(warmup+d)
	var slot atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				due := begin.Add(time.Duration(slot.Add(1)-1) * interval)
				if !due.Before(end) {
					return
				}
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				err := fn(ctx, w, seq.Add(1))
				if !due.Before(measureFrom) {
					rec.record(w, time.Since(due), err)
				}
			}
		})
	}
	wg.Wait()
	return rec.result(d)
}
