package loadtest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestReadAnswer(t *testing.T) {
	t.Parallel()
	hold := `{"hold_id":"s.abc","sale_id":"s","store_id":"b1","user_id":"u1","quantity":1,"state":"held"}`
	cases := []struct {
		name string
		r    vegeta.Result
		want answer
	}{
		{"created", vegeta.Result{Code: 201, Body: []byte(hold)}, answer{Created, "s.abc", "u1", "s"}},
		{"replayed", vegeta.Result{Code: 200, Body: []byte(hold)}, answer{Replayed, "s.abc", "u1", "s"}},
		{"sold out", vegeta.Result{Code: 409, Error: "409 Conflict", Body: []byte(`{"error":{"code":"sold_out","message":"sold out"}}`)}, answer{outcome: "sold_out"}},
		{"no store stock", vegeta.Result{Code: 409, Body: []byte(`{"error":{"code":"no_store_stock","message":"…"}}`)}, answer{outcome: "no_store_stock"}},
		{"limit reached", vegeta.Result{Code: 409, Body: []byte(`{"error":{"code":"limit_reached","message":"…"}}`)}, answer{outcome: "limit_reached"}},
		{"not started", vegeta.Result{Code: 425, Body: []byte(`{"error":{"code":"not_started","message":"…"}}`)}, answer{outcome: "not_started"}},
		{"overloaded", vegeta.Result{Code: 503, Body: []byte(`{"error":{"code":"overloaded","message":"…"}}`)}, answer{outcome: "overloaded"}},
		{"timeout", vegeta.Result{Error: `Post "http://x": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`}, answer{outcome: Timeout}},
		{"refused", vegeta.Result{Error: `Post "http://x": dial tcp 127.0.0.1:1: connect: connection refused`}, answer{outcome: TransportError}},
		{"html error page", vegeta.Result{Code: 502, Body: []byte(`<html>Bad Gateway</html>`)}, answer{outcome: "http_502"}},
		{"hold without id", vegeta.Result{Code: 201, Body: []byte(`{}`)}, answer{outcome: "http_201"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := readAnswer(&tc.r); got != tc.want {
				t.Fatalf("readAnswer = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// count is how many results have an outcome.
type count struct {
	outcome string
	n       int
}

// results makes results sent at rate per second, each answered after
// latency, with the outcomes counted.
func results(rate int, latency time.Duration, counts ...count) []vegeta.Result {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var out []vegeta.Result
	for _, c := range counts {
		for range c.n {
			r := vegeta.Result{Timestamp: t0.Add(time.Duration(len(out)) * time.Second / time.Duration(rate)), Latency: latency}
			switch c.outcome {
			case Created:
				r.Code, r.Body = 201, []byte(`{"hold_id":"h`+strconv.Itoa(len(out))+`","user_id":"u`+strconv.Itoa(len(out))+`"}`)
			case Timeout:
				r.Error = "Client.Timeout exceeded"
			default:
				r.Code, r.Body = 409, []byte(`{"error":{"code":"`+c.outcome+`"}}`)
			}
			out = append(out, r)
		}
	}
	return out
}

func TestRampJudge(t *testing.T) {
	t.Parallel()
	ramp := Ramp{MinOK: 0.99, MaxP99: 100 * time.Millisecond}
	ms := time.Millisecond
	cases := []struct {
		name    string
		results []vegeta.Result // for a step of 100/s for 2 s
		ok      bool
		reason  string
	}{
		{"all correct, fast", results(100, 2*ms, count{Created, 50}, count{"sold_out", 150}), true, ""},
		{"business refusals are correct", results(100, 2*ms, count{"no_store_stock", 100}, count{"limit_reached", 50}, count{"not_started", 50}), true, ""},
		{"overloaded", results(100, 2*ms, count{Created, 190}, count{"overloaded", 10}), false, "correct answers,"},
		{"timeouts", results(100, 2*ms, count{Created, 195}, count{Timeout, 5}), false, "correct answers,"},
		{"answers lag", results(100, 1500*ms, count{Created, 200}), false, "of the 100/s offered"},
		{"slow", results(100, 150*ms, count{Created, 200}), false, "p99"},
		{"attacker fell behind", results(50, 2*ms, count{Created, 100}), false, "100 of 200 requests sent"},
		{"nothing sent", nil, false, "0 of 200 requests sent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tl := newTally()
			for i := range tc.results {
				tl.add(&tc.results[i], readAnswer(&tc.results[i]).outcome)
			}
			s := ramp.judge(step{100, 2 * time.Second}, tl)
			if s.Sustainable != tc.ok || !strings.Contains(s.Reason, tc.reason) {
				t.Fatalf("judge = %+v, want sustainable %v with a reason about %q", s, tc.ok, tc.reason)
			}
			if s.Rate != 100 || s.Requests != uint64(len(tc.results)) {
				t.Fatalf("step %+v", s)
			}
		})
	}
}

func TestCollectorFindsRetryMismatches(t *testing.T) {
	t.Parallel()
	hold := func(code uint16, holdID, user string) *vegeta.Result {
		return &vegeta.Result{Code: code, Body: []byte(`{"hold_id":"` + holdID + `","user_id":"` + user + `"}`)}
	}
	cases := []struct {
		name       string
		results    []*vegeta.Result
		holds      int
		mismatches int
	}{
		{"replays of the same hold", []*vegeta.Result{hold(201, "x", "a"), hold(200, "x", "a"), hold(200, "x", "a"), hold(201, "y", "b")}, 2, 0},
		{"replay first, then created", []*vegeta.Result{hold(200, "x", "a"), hold(201, "x", "a")}, 1, 0},
		{"another hold for the same shopper", []*vegeta.Result{hold(201, "x", "a"), hold(200, "y", "a")}, 2, 1},
		{"created twice", []*vegeta.Result{hold(201, "x", "a"), hold(201, "x", "a")}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector()
			for _, r := range tc.results {
				c.add(r, newTally())
			}
			if len(c.holds) != tc.holds || c.mismatches() != tc.mismatches {
				t.Fatalf("holds %d, mismatches %d; want %d, %d", len(c.holds), c.mismatches(), tc.holds, tc.mismatches)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := DefaultConfig()
	good.AdminToken = "admin-token-0123456789"
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	ramp := DefaultRamp()
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no token", func(c *Config) { c.AdminToken = "" }, "admin token"},
		{"bad target", func(c *Config) { c.Target = "127.0.0.1:8080" }, "target"},
		{"negative rate", func(c *Config) { c.Rate = -5 }, "rate"},
		{"retry share 2", func(c *Config) { c.RetryShare = 2 }, "retry share"},
		{"bad sale id", func(c *Config) { c.SaleID = "a.b" }, "sale id"},
		{"no stores", func(c *Config) { c.Stores = 0 }, "stores"},
		{"ramp max under start", func(c *Config) { r := ramp; r.Max = 50; c.Ramp = &r }, "ramp"},
		{"ramp min-ok over 1", func(c *Config) { r := ramp; r.MinOK = 1.5; c.Ramp = &r }, "min-ok"},
		{"max workers under workers", func(c *Config) { c.MaxWorkers = 2 }, "workers"},
		{"centre off the map", func(c *Config) { c.Center = Point{Lat: 91} }, "centre"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good
			tc.change(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSteps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ramp *Ramp
		want []int
	}{
		{"fixed", nil, []int{500}},
		{"even", &Ramp{Start: 100, Step: 100, Max: 400}, []int{100, 200, 300, 400}},
		{"max off the grid", &Ramp{Start: 100, Step: 300, Max: 500}, []int{100, 400, 500}},
		{"one step", &Ramp{Start: 50, Step: 10, Max: 50}, []int{50}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			c.Ramp = tc.ramp
			var got []int
			for _, s := range c.steps() {
				got = append(got, s.rate)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("steps %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReportNamesSeveralSales checks the report's head for an attack on
// several sales, also when it only wrote targets (no audit, so no
// per-sale lines to count them by).
func TestReportNamesSeveralSales(t *testing.T) {
	t.Parallel()
	for _, r := range []Report{
		{Target: "http://x", SaleID: "a,b", SaleCreated: true, Units: 12, TargetsWritten: 10},
		{Target: "http://x", SaleID: "a,b", SaleCreated: true, Units: 12, Sales: []SaleAudit{{SaleID: "a"}, {SaleID: "b"}}},
	} {
		if out := r.String(); !strings.Contains(out, "sales:       2 (created, 12 units in all): a,b\n") {
			t.Fatalf("report head:\n%s", out)
		}
	}
	if out := (Report{Target: "http://x", SaleID: "a", Units: 5, TargetsWritten: 1}).String(); !strings.Contains(out, "sale:        a (existing, 5 units)\n") {
		t.Fatalf("one sale's head:\n%s", out)
	}
}
