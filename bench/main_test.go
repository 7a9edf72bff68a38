package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
)

// TestHarnessRuns runs every scenario of the harness briefly against the
// real Redis and PostgreSQL, so that `make bench` keeps working. It checks
// the report's shape and that no scenario failed, never a figure.
func TestHarnessRuns(t *testing.T) {
	testenv.Redis(t)
	testenv.Postgres(t)
	o := options{
		redisURL: testenv.RedisURL(), databaseURL: testenv.DatabaseURL(),
		workers: 4, rounds: 1, duration: 100 * time.Millisecond, only: "a,b,c,d",
	}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"(a) raw Redis", "(b) engine Reserve, coalesced, 1 hot sale", "(b) engine Reserve, coalesced, 100 sales",
		"(c) PostgreSQL row lock", "(d) HTTP no-op", "(d) HTTP POST /v1", "(d) HTTP POST, in-memory ledger",
		"(d) in-memory ledger / (d) no-op handler",
		"(b) hot sale / (a) raw Redis", "(b) hot sale / (c) PostgreSQL row lock", "(d) reserve endpoint / (d) no-op handler",
		"p99 at 80% of peak", "cpu µs/op", "(d) CPU per request, no-op / reserve endpoint",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "first error") {
		t.Errorf("a scenario failed:\n%s", report)
	}
	// The last columns of a scenario's line: batch and sales per trip,
	// then CPU µs per request of the process and of Redis ("-": none).
	for _, c := range []struct{ name, batch, redis string }{
		{"(a) raw Redis", "-", "µs"}, {"(b) engine Reserve, coalesced, 1 hot sale", "n", "µs"},
		{"(c) PostgreSQL row lock", "-", "-"}, {"(d) HTTP no-op", "-", "-"},
		{"(d) HTTP POST, in-memory ledger", "-", "-"}, {"(d) HTTP POST /v1", "n", "µs"},
	} {
		var cols []string
		for line := range strings.SplitSeq(report, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), c.name) {
				cols = strings.Fields(line)
				break
			}
		}
		if len(cols) < 4 {
			t.Errorf("no line for %s", c.name)
			continue
		}
		batch, sales, proc, redis := cols[len(cols)-4], cols[len(cols)-3], cols[len(cols)-2], cols[len(cols)-1]
		number := func(v string) bool { f, err := strconv.ParseFloat(v, 64); return err == nil && f > 0 }
		if !number(proc) {
			t.Errorf("%s: process CPU per request %q", c.name, proc)
		}
		if (c.batch == "-") != (batch == "-") || (c.batch == "n" && !number(batch)) {
			t.Errorf("%s: batch %q, want %s", c.name, batch, map[string]string{"-": "none", "n": "a number"}[c.batch])
		}
		if (c.batch == "-") != (sales == "-") || (c.batch == "n" && !number(sales)) {
			t.Errorf("%s: sales per trip %q, want %s", c.name, sales, map[string]string{"-": "none", "n": "a number"}[c.batch])
		}
		if (c.redis == "-") != (redis == "-") || (c.redis == "µs" && !number(redis)) {
			t.Errorf("%s: Redis CPU per request %q, want %s", c.name, redis, map[string]string{"-": "none", "µs": "a number"}[c.redis])
		}
	}
}

// TestRecorderKeepsTheFirstError records errors of different types from
// many callers at once: the first one is kept, every one is counted.
func TestRecorderKeepsTheFirstError(t *testing.T) {
	rec := newRecorder(2)
	first := errors.New("first")
	rec.record(0, time.Millisecond, first)
	rec.record(1, time.Millisecond, fmt.Errorf("wrapped: %w", io.EOF))
	rec.record(1, time.Millisecond, nil)
	res := rec.result(time.Second)
	if res.firstErr != first || res.errs != 2 || res.ops != 1 || len(res.lat) != 3 {
		t.Fatalf("result %+v", res)
	}
}

// TestRedisCPU reads the CPU seconds out of an INFO cpu answer, and from
// the real Redis: serving round trips, both it and this process spend CPU.
func TestRedisCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.000000\r\nused_cpu_sys_main_thread:1.000000\r\n"
	if got, want := redisCPU(info), 3750*time.Millisecond; got != want {
		t.Errorf("redisCPU = %v, want %v", got, want)
	}
	if got := redisCPU("# CPU\r\n"); got != 0 {
		t.Errorf("redisCPU of nothing = %v", got)
	}
	rdb := testenv.Redis(t)
	ctx := context.Background()
	before := readCPU(ctx, rdb)
	for range 2000 {
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	after := readCPU(ctx, rdb)
	if before.redis <= 0 || after.redis <= before.redis || after.proc <= before.proc {
		t.Errorf("after 2000 round trips, CPU times went from %+v to %+v", before, after)
	}
}

// BenchmarkEndpointInProcess drives the reserve endpoint's handler with no
// sockets over the in-memory ledger of the d-memory scenario (coalescing
// on): what one reservation costs in the process apart from the network
// and Redis, the part that bounds (d) once Redis has cores of its own.
// The noop sub-benchmark is the no-op handler of (d), driven alike.
func BenchmarkEndpointInProcess(b *testing.B) {
	testenv.Redis(b)
	ctx := context.Background()
	o := options{redisURL: testenv.RedisURL(), workers: 1}
	f, err := newFixture(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	ids, err := f.newSale(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := f.memoryEngine(engine.CoalesceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	reserve, err := reserveHandler(eng)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{{"reserve", reserve}, {"noop", noopHandler}} {
		b.Run(c.name, func(b *testing.B) {
			path := "/v1/sales/" + ids[0] + "/reservations"
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // many shoppers at once, as in a sale: the coalescer batches them
			b.RunParallel(func(pb *testing.PB) {
				var rc fasthttp.RequestCtx
				body := make([]byte, 0, 96)
				for pb.Next() {
					rc.Request.Reset()
					rc.Response.Reset()
					rc.Request.Header.SetMethod(fasthttp.MethodPost)
					rc.Request.SetRequestURI(path)
					rc.Request.SetBodyRaw(f.reserveBody(seq.Add(1), body[:0]))
					c.h(&rc)
					if rc.Response.StatusCode() != fasthttp.StatusCreated {
						b.Fatalf("status %d: %s", rc.Response.StatusCode(), rc.Response.Body())
					}
				}
			})
		})
	}
}
