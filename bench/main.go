// Command bench is flashsale's side-by-side benchmark harness (make bench).
// In one run on the local Redis and PostgreSQL it measures, with the same
// number of concurrent callers each:
//
//	(a) raw Redis: one single-request reserve script per call (go-redis)
//	(b) the engine's Reserve with coalescing, for one hot sale and for 100
//	(c) PostgreSQL row locking: UPDATE … WHERE qty > 0 plus the hold insert,
//	    one transaction per request, on one hot row
//	(d) over HTTP: the reserve endpoint against a no-op fasthttp handler,
//	    driven by the same load generator, and the same endpoint over a
//	    ledger that stores nothing (what the store behind it costs)
//
// For each it finds the peak rate with a closed loop, then offers 80% of
// the median peak in an open loop, and prints throughput, p50/p99/p999
// latency at both, and the ratios the performance targets are stated in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/geo"
	"github.com/flashsale/flashsale/reservation"
)

type options struct {
	redisURL, databaseURL string
	workers, rounds       int
	duration              time.Duration
	only                  string
	cpuProfile            string
	coalesce              engine.CoalesceConfig
	// redisCPUs, when set, are the CPUs Redis is pinned to for the run;
	// this process gets the others.
	redisCPUs *unix.CPUSet
}

func main() {
	var o options
	flag.StringVar(&o.redisURL, "redis-url", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis to measure ($REDIS_URL)")
	flag.StringVar(&o.databaseURL, "database-url", envOr("BENCH_DATABASE_URL", "postgres://127.0.0.1:5432/flashsale_bench?sslmode=disable"), "PostgreSQL for the row-lock baseline; the database is created if missing ($BENCH_DATABASE_URL)")
	flag.IntVar(&o.workers, "workers", 64, "concurrent callers (and HTTP connections) in every scenario")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "length of each measurement")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds over every scenario; the report gives medians")
	flag.StringVar(&o.only, "only", "a,b,c,d", "scenarios to run: a, b (b1 hot sale, b100 100 sales), c, d (d-noop, d-memory, d-reserve)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run here")
	flag.IntVar(&o.coalesce.MaxBatch, "coalesce-max-batch", 256, "coalescer: most reservations per script call")
	flag.DurationVar(&o.coalesce.MaxWait, "coalesce-max-wait", 0, "coalescer: how long a batch that is not full waits")
	flag.IntVar(&o.coalesce.InFlight, "coalesce-inflight", 2, "coalescer: script calls of one sale at once")
	flag.IntVar(&o.coalesce.Calls, "coalesce-calls", 0, "coalescer: round trips to Redis at once, over every sale (0: twice -coalesce-inflight)")
	flag.IntVar(&o.coalesce.MaxSales, "coalesce-max-sales", 64, "coalescer: most sales' script calls in one round trip")
	redisCPUs := flag.String("redis-cpus", "", "pin the Redis server (on this machine) to these CPUs, e.g. 1 or 2-3, and this process to the others, for the run: Redis on cores of its own, as in production")
	flag.Parse()
	if *redisCPUs != "" {
		set, err := parseCPUs(*redisCPUs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		o.redisCPUs = &set
	}
	if o.workers < 1 || o.rounds < 1 || o.duration < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench: -workers and -rounds must be positive and -duration at least 100ms")
		os.Exit(2)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// row is one line of the report: a scenario's median over the rounds.
type row struct {
	key, name  string
	peak, at80 summary
	allocs     float64 // heap allocations per request in the whole process
	// CPU time per request at peak, of this process (load generator
	// included) and of Redis.
	procCPU, redisCPU time.Duration
	batch             float64 // reservations per coalesced ledger call at peak (0: no coalescer)
	sales             float64 // sales' batches per round trip to Redis at peak (0: no coalescer)
	firstErr          error
}

// summary is the median of each figure over the rounds, and the range of
// the rate.
type summary struct {
	rate, minRate, maxRate float64
	p50, p99, p999         time.Duration
	errs                   int64
}

func summarize(rs []result) summary {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	s := summary{
		rate:    med(result.rate),
		minRate: math.Inf(1),
		p50:     time.Duration(med(func(r result) float64 { return float64(r.pct(.5)) })),
		p99:     time.Duration(med(func(r result) float64 { return float64(r.pct(.99)) })),
		p999:    time.Duration(med(func(r result) float64 { return float64(r.pct(.999)) })),
	}
	for _, r := range rs {
		s.minRate, s.maxRate = math.Min(s.minRate, r.rate()), math.Max(s.maxRate, r.rate())
		s.errs += r.errs
	}
	return s
}

// scenario is one line of the comparison: setup prepares it for a round
// and returns the request to measure and what to undo afterwards. redis
// says whether its requests go to Redis: for the others, Redis's CPU per
// request would be its idle work over their requests, and the report
// shows none.
type scenario struct {
	key, name string
	redis     bool
	setup     func(ctx context.Context) (op, func(), error)
}

// engineSales sets up n new sales and a new engine that reserves them.
func (f *fixture) engineSales(n int) func(ctx context.Context) (op, func(), error) {
	return func(ctx context.Context) (op, func(), error) {
		ids, err := f.newSale(ctx, n)
		if err != nil {
			return nil, nil, err
		}
		eng, err := f.newEngine()
		if err != nil {
			return nil, nil, err
		}
		return f.engineReserve(eng, ids), func() {}, nil
	}
}

func (f *fixture) scenarios(o options) []scenario {
	oneSale := func(mk func(sale string) op) func(ctx context.Context) (op, func(), error) {
		return func(ctx context.Context) (op, func(), error) {
			ids, err := f.newSale(ctx, 1)
			if err != nil {
				return nil, nil, err
			}
			return mk(ids[0]), func() {}, nil
		}
	}
	return []scenario{
		{"a", "(a) raw Redis: 1 reserve script per request", true, oneSale(f.rawReserve)},
		{"b1", "(b) engine Reserve, coalesced, 1 hot sale", true, f.engineSales(1)},
		{"b100", "(b) engine Reserve, coalesced, 100 sales", true, f.engineSales(100)},
		{"c", "(c) PostgreSQL row lock, 1 tx per request", false, func(ctx context.Context) (op, func(), error) {
			return f.postgresReserve(ctx, o)
		}},
		{"d-noop", "(d) HTTP no-op fasthttp handler", false, func(context.Context) (op, func(), error) { return f.httpNoop(o) }},
		{"d-memory", "(d) HTTP POST, in-memory ledger (no Redis)", false, func(ctx context.Context) (op, func(), error) {
			ids, err := f.newSale(ctx, 1)
			if err != nil {
				return nil, nil, err
			}
			return f.httpMemory(o, ids[0])
		}},
		{"d-reserve", "(d) HTTP POST /v1/sales/{id}/reservations", true, func(ctx context.Context) (op, func(), error) {
			ids, err := f.newSale(ctx, 1)
			if err != nil {
				return nil, nil, err
			}
			eng, err := f.newEngine()
			if err != nil {
				return nil, nil, err
			}
			return f.httpReserve(o, eng, ids[0])
		}},
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	cc := o.coalesce.WithDefaults()
	fmt.Fprintf(w, "flashsale bench: %d callers, %s per measurement after %s of warm-up, %d rounds (medians; peak range min-max), GOMAXPROCS=%d, coalescing max batch %d, max wait %s, in flight %d per sale, %d round trips, %d sales per trip\n\n",
		o.workers, o.duration, warmup, o.rounds, runtime.GOMAXPROCS(0), cc.MaxBatch, cc.MaxWait, cc.InFlight, cc.Calls, cc.MaxSales)
	f, err := newFixture(ctx, o)
	if err != nil {
		return err
	}
	defer f.close()
	restore := func() {}
	if o.redisCPUs != nil {
		p, putBack, err := pin(ctx, f.rdb, o.redisURL, *o.redisCPUs)
		if err != nil {
			return err
		}
		restore = putBack
		defer restore()
		fmt.Fprintf(w, "Redis pinned to CPU %s and this process to CPU %s (GOMAXPROCS=%d) for the run: neither competes with the other; PostgreSQL is not pinned\n\n",
			cpuList(*o.redisCPUs), cpuList(p.self), runtime.GOMAXPROCS(0))
	}
	// An interrupted run leaves Redis as it found it: its CPUs, and none
	// of the bench's keys.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "bench: %v: putting Redis back and stopping\n", s)
			restore()
			f.close()
			os.Exit(130)
		case <-finished:
		}
	}()

	want := func(s string) bool {
		only := "," + o.only + ","
		return strings.Contains(only, ","+s+",") || strings.Contains(only, ","+s[:1]+",")
	}
	var todo []scenario
	for _, sc := range f.scenarios(o) {
		if want(sc.key) {
			todo = append(todo, sc)
		}
	}
	// Rounds interleave the scenarios, so that a slow minute of a shared
	// machine weighs on all of them alike. The closed-loop rounds come
	// first: the open loop then offers 80% of the median peak, the one the
	// report gives, rather than of one round's peak, which a lucky round
	// sets too high for the rounds that follow.
	peaks := make([][]result, len(todo))
	at80s := make([][]result, len(todo))
	allocs := make([]float64, len(todo))
	calls, holds, trips := make([]int64, len(todo)), make([]int64, len(todo)), make([]int64, len(todo))
	procCPU, redisCPU := make([]time.Duration, len(todo)), make([]time.Duration, len(todo))
	reqs := make([]int64, len(todo))
	for round := range o.rounds {
		for i, sc := range todo {
			fmt.Fprintf(os.Stderr, "peak, round %d/%d: %s …\n", round+1, o.rounds, sc.name)
			fn, done, err := sc.setup(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.Mallocs
			c0, h0, t0 := f.calls.Load(), f.holds.Load(), f.trips.Load()
			cpu0, n0 := readCPU(ctx, f.rdb), seq.Load()
			peak := closedLoop(ctx, o.workers, o.duration, fn)
			cpu1 := readCPU(ctx, f.rdb)
			procCPU[i] += cpu1.proc - cpu0.proc
			redisCPU[i] += cpu1.redis - cpu0.redis
			reqs[i] += seq.Load() - n0 // every call of the loop, warm-up included, as the CPU times are
			calls[i] += f.calls.Load() - c0
			holds[i] += f.holds.Load() - h0
			trips[i] += f.trips.Load() - t0
			runtime.ReadMemStats(&ms)
			allocs[i] += float64(ms.Mallocs-before) / math.Max(1, float64(peak.ops+peak.errs)) / float64(o.rounds)
			done()
			peaks[i] = append(peaks[i], peak)
		}
	}
	rows := make([]row, len(todo))
	for i, sc := range todo {
		rows[i] = row{key: sc.key, name: sc.name, peak: summarize(peaks[i]), allocs: allocs[i]}
	}
	for round := range o.rounds {
		for i, sc := range todo {
			rate := 0.8 * rows[i].peak.rate
			fmt.Fprintf(os.Stderr, "80%% of peak (%.0f/s), round %d/%d: %s …\n", rate, round+1, o.rounds, sc.name)
			fn, done, err := sc.setup(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			at80s[i] = append(at80s[i], openLoop(ctx, o.workers, rate, o.duration, fn))
			done()
		}
	}
	for i, sc := range todo {
		rows[i].at80 = summarize(at80s[i])
		if reqs[i] > 0 {
			rows[i].procCPU = procCPU[i] / time.Duration(reqs[i])
			if sc.redis {
				rows[i].redisCPU = redisCPU[i] / time.Duration(reqs[i])
			}
		}
		if calls[i] > 0 { // only the coalescer's calls are counted
			rows[i].batch = float64(holds[i]) / float64(calls[i])
			rows[i].sales = float64(calls[i]) / float64(max(1, trips[i]))
		}
		for _, r := range append(peaks[i], at80s[i]...) {
			if r.firstErr != nil {
				rows[i].firstErr = r.firstErr
				break
			}
		}
	}
	report(w, rows, o.redisCPUs != nil)
	return nil
}

// report prints the table and the ratios; pinned says Redis ran on CPUs
// of its own.
func report(w io.Writer, rows []row, pinned bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	fmt.Fprintln(tw, "scenario\tpeak ops/s\t(range)\tp50 ms\tp99 ms\tp999 ms\terrors\t80%: ops/s\tp50 ms\tp99 ms\tp999 ms\terrors\tallocs/op\tbatch\tsales/trip\tcpu µs/op: proc\tredis\t")
	for _, r := range rows {
		batch, sales := "-", "-"
		if r.batch > 0 {
			batch, sales = fmt.Sprintf("%.1f", r.batch), fmt.Sprintf("%.1f", r.sales)
		}
		us := func(d time.Duration) string {
			if d == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", float64(d.Nanoseconds())/1000)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f-%.0f\t%s\t%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t\n", r.name,
			r.peak.rate, r.peak.minRate, r.peak.maxRate, ms(r.peak.p50), ms(r.peak.p99), ms(r.peak.p999), r.peak.errs,
			r.at80.rate, ms(r.at80.p50), ms(r.at80.p99), ms(r.at80.p999), r.at80.errs, r.allocs, batch, sales, us(r.procCPU), us(r.redisCPU))
	}
	tw.Flush()
	fmt.Fprintln(w, "batch: reservations per script call at peak, for the scenarios that go through the engine's coalescer; sales/trip: script calls (of different sales) per round trip to Redis")
	fmt.Fprintln(w, "cpu µs/op: CPU time per request at peak (warm-up included) of this process (load generator and, for a, b and d, the code under test) and, for the scenarios that use it, of the Redis server (INFO cpu)")
	for _, r := range rows {
		if r.firstErr != nil {
			fmt.Fprintf(w, "first error of %s: %v\n", r.name, r.firstErr)
		}
	}
	find := func(key string) *row {
		for i := range rows {
			if rows[i].key == key {
				return &rows[i]
			}
		}
		return nil
	}
	fmt.Fprintln(w, "\nratios of median peaks (target):")
	ratio := func(label, a, b string, target float64) {
		ra, rb := find(a), find(b)
		if ra == nil || rb == nil {
			return
		}
		v := ra.peak.rate / rb.peak.rate
		verdict := "met"
		if v < target {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "  %-52s %8.2f  (≥ %g: %s)\n", label, v, target, verdict)
	}
	ratio("(b) hot sale / (a) raw Redis", "b1", "a", 2)
	ratio("(b) hot sale / (c) PostgreSQL row lock", "b1", "c", 50)
	ratio("(d) reserve endpoint / (d) no-op handler", "d-reserve", "d-noop", 0.6)
	if rm, rn := find("d-memory"), find("d-noop"); rm != nil && rn != nil {
		fmt.Fprintf(w, "  %-52s %8.2f  (the same endpoint with no store behind it: what Redis could at most give back)\n",
			"(d) in-memory ledger / (d) no-op handler", rm.peak.rate/rn.peak.rate)
	}
	if rr, rn := find("d-reserve"), find("d-noop"); rr != nil && rn != nil && rr.procCPU+rr.redisCPU > 0 {
		// While the machine is CPU-bound, throughput is CPU per request
		// over cores: this is the most the ratio above can reach here.
		fmt.Fprintf(w, "  %-52s %8.2f  (no-op %.1f µs, reserve %.1f µs of CPU per request)\n", "(d) CPU per request, no-op / reserve endpoint",
			float64(rn.procCPU+rn.redisCPU)/float64(rr.procCPU+rr.redisCPU),
			float64((rn.procCPU+rn.redisCPU).Nanoseconds())/1000, float64((rr.procCPU+rr.redisCPU).Nanoseconds())/1000)
		if pinned && rr.procCPU > 0 {
			// With Redis on CPUs of its own, only this process's CPU
			// competes with the load generator's.
			fmt.Fprintf(w, "  %-52s %8.2f  (no-op %.1f µs, reserve %.1f µs; Redis on its own CPU)\n", "(d) CPU per request in this process, no-op / reserve",
				float64(rn.procCPU)/float64(rr.procCPU), float64(rn.procCPU.Nanoseconds())/1000, float64(rr.procCPU.Nanoseconds())/1000)
		}
	}
	for _, r := range rows {
		if r.key == "b1" || r.key == "d-reserve" {
			verdict := "met"
			if r.at80.p99 > 10*time.Millisecond {
				verdict = "NOT met"
			}
			fmt.Fprintf(w, "  %-52s %8.2f ms (≤ 10 ms: %s)\n", "p99 at 80% of peak, "+r.name[:3], float64(r.at80.p99.Microseconds())/1000, verdict)
		}
	}
}

// fixture is the shared set-up: Redis, a namespace of stores, the points
// shoppers stand at, and what to clean up.
type fixture struct {
	o      options
	rdb    *redis.Client
	ns     string
	ledger *reservation.Ledger
	eng    *engine.Engine // sets sales up
	// coalesce configures the engines of the scenarios that reserve
	// through one.
	coalesce engine.CoalesceConfig
	stores   []engine.Store
	points   []geo.Point
	cands    [][]engine.Candidate // the 8 nearest stores of each point, as the engine offers first
	sales    []string
	// calls, holds and trips count the coalescer's script calls, the
	// reservations they carried and the round trips that carried them.
	calls, holds, trips atomic.Int64
}

const benchLat, benchLon = 52.52, 13.405

func newFixture(ctx context.Context, o options) (*fixture, error) {
	opt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.PoolSize = 2 * o.workers
	reservation.Tune(opt) // as the flashsale binary does
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s: %v (run scripts/ensure-services.sh redis)", o.redisURL, err)
	}
	f := &fixture{o: o, rdb: rdb, ns: "bench-" + engine.RandomID()}
	f.ledger = reservation.New(rdb, reservation.WithNamespace(f.ns))
	if err := f.ledger.Load(ctx); err != nil {
		return nil, err
	}
	cc := o.coalesce
	cc.OnBatch = func(n int, _ time.Duration, _ error) {
		f.calls.Add(1)
		f.holds.Add(int64(n))
	}
	cc.OnCall = func(int) { f.trips.Add(1) }
	f.coalesce = cc
	if f.eng, err = f.newEngine(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	items := make([]geo.Item, 50)
	for i := range 50 {
		p := around(rng, 10)
		f.stores = append(f.stores, engine.Store{ID: fmt.Sprintf("b%02d", i), Name: fmt.Sprintf("Bench %d", i), Lat: p.Lat, Lon: p.Lon})
		items[i] = geo.Item{ID: f.stores[i].ID, Point: p}
	}
	if err := f.eng.UpsertStores(ctx, f.stores); err != nil {
		return nil, err
	}
	ix, err := geo.NewIndex(items)
	if err != nil {
		return nil, err
	}
	for range 1024 {
		p := around(rng, 8)
		near, err := ix.Nearest(p, 25, 8)
		if err != nil {
			return nil, err
		}
		c := make([]engine.Candidate, len(near))
		for i, n := range near {
			c[i] = engine.Candidate{StoreID: n.ID, DistanceKm: n.DistanceKm}
		}
		f.points = append(f.points, p)
		f.cands = append(f.cands, c)
	}
	return f, nil
}

// around returns a random point within r km of the city centre.
func around(rng *rand.Rand, r float64) geo.Point {
	d := r * math.Sqrt(rng.Float64())
	a := rng.Float64() * 2 * math.Pi
	return geo.Point{
		Lat: benchLat + d*math.Cos(a)/111.32,
		Lon: benchLon + d*math.Sin(a)/(111.32*math.Cos(benchLat*math.Pi/180)),
	}
}

// newSale creates n live sales with stock no run can sell out.
func (f *fixture) newSale(ctx context.Context, n int) ([]string, error) {
	var ids []string
	for range n {
		alloc := map[string]int{}
		for _, s := range f.stores {
			alloc[s.ID] = 1_000_000
		}
		now := time.Now()
		s, err := f.eng.CreateSale(ctx, engine.Sale{
			ID: "bench-" + engine.RandomID(), Name: "bench", StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour),
			PerUserLimit: 1, HoldTTLSeconds: 600, MaxDistanceKm: 25, Allocations: alloc,
		})
		if err != nil {
			return nil, err
		}
		f.sales = append(f.sales, s.ID)
		ids = append(ids, s.ID)
	}
	return ids, nil
}

func (f *fixture) close() {
	ctx := context.Background()
	for _, id := range f.sales {
		f.rdb.Unlink(ctx, reservation.SaleKeys(id)...)
	}
	f.rdb.Unlink(ctx, f.ns+":stores", f.ns+":sales")
	f.rdb.Close()
}

func (f *fixture) rawReserve(saleID string) op {
	return func(ctx context.Context, _ int, seq int64) error {
		id := fmt.Sprint(seq)
		outs, err := f.ledger.Reserve(ctx, saleID, time.Now(), []engine.LedgerReserve{{
			HoldID: saleID + ".a" + id, UserID: "a" + id, Key: "k", Quantity: 1, Candidates: f.cands[seq%int64(len(f.cands))],
		}})
		if err != nil {
			return err
		}
		return outs[0].Err
	}
}

// newEngine returns an engine over the fixture's ledger, coalescing as the
// options say. Each scenario that reserves through an engine gets a new
// one: an engine keeps the store index and cache of the sales it serves
// until an hour past their end, and the hundreds of sales of the other
// scenarios' rounds would otherwise weigh on its collector.
func (f *fixture) newEngine() (*engine.Engine, error) {
	cc := f.coalesce
	return engine.New(engine.Config{Ledger: f.ledger, Coalesce: &cc})
}

func (f *fixture) engineReserve(eng *engine.Engine, sales []string) op {
	return func(ctx context.Context, _ int, seq int64) error {
		p := f.points[seq%int64(len(f.points))]
		_, err := eng.Reserve(ctx, engine.ReserveRequest{
			SaleID: sales[seq%int64(len(sales))], UserID: fmt.Sprint("b", seq), HasLocation: true, Lat: p.Lat, Lon: p.Lon,
		})
		return err
	}
}

var errStatus = errors.New("unexpected status")
