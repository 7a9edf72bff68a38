package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/loadtest"
)

const adminToken = "loadtest-admin-token-0123456789"

// serveAPI serves the real API over real Redis, in a namespace of the
// test's own, on a loopback port, and returns its base URL.
func serveAPI(t *testing.T) string {
	t.Helper()
	_, ledger := testenv.Ledger(t, "lt-ns-") // its sales go when the test ends
	eng, err := engine.New(engine.Config{Ledger: ledger, Coalesce: &engine.CoalesceConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Engine: eng, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: srv.Handler(), ReadTimeout: 10 * time.Second}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	return "http://" + ln.Addr().String()
}

// config is a small, quick load test against base.
func config(base string) loadtest.Config {
	cfg := loadtest.DefaultConfig()
	cfg.Target, cfg.AdminToken = base, adminToken
	cfg.Stores, cfg.Quantity = 8, 200
	cfg.Rate, cfg.Duration = 300, 1500*time.Millisecond
	cfg.Timeout = 5 * time.Second
	return cfg
}

// TestRunSellsOutAndAudits runs a flash sale to its end: every unit held
// once, retries answered their own hold, the audit clean, the results
// readable by vegeta. A second run on the same, now sold-out, sale only
// meets sold_out.
func TestRunSellsOutAndAudits(t *testing.T) {
	base := serveAPI(t)
	path := filepath.Join(t.TempDir(), "results.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(base)
	cfg.Results = f
	rep, err := loadtest.Run(context.Background(), cfg)
	if cerr := f.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, rep)
	}
	if !rep.SaleCreated || rep.Units != 200 || rep.Outcomes[loadtest.Created] != 200 || rep.Holds != 200 {
		t.Fatalf("want the 200 units sold, each once:\n%s", rep)
	}
	if rep.SoldOutAfter <= 0 || rep.Outcomes["sold_out"] == 0 {
		t.Fatalf("no time to sell out:\n%s", rep)
	}
	if rep.RetryMismatches != 0 || rep.Retries == 0 || !rep.Audit.OK || !rep.Audit.Exact || rep.Audit.Held != 200 || rep.Audit.Remaining != 0 {
		t.Fatalf("retries or audit:\n%s", rep)
	}
	sum := 0
	for _, n := range rep.Outcomes {
		sum += n
	}
	if uint64(sum) != rep.Requests || rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
		t.Fatalf("outcomes add up to %d of %d requests; latency %+v", sum, rep.Requests, rep.Latency)
	}
	if !strings.Contains(rep.String(), "audit:       ok, nothing oversold") {
		t.Fatalf("report:\n%s", rep)
	}

	// vegeta report reads the results file: every request is in it.
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := vegeta.NewDecoder(f)
	var n uint64
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("result %d: %v", n, err)
			}
			break
		}
		if r.Attack != "flashsale" || r.URL != base+"/v1/sales/"+rep.SaleID+"/reservations" {
			t.Fatalf("result %+v", r)
		}
		n++
	}
	if n != rep.Requests {
		t.Fatalf("results file holds %d results, the report %d requests", n, rep.Requests)
	}

	again := config(base)
	again.SaleID, again.Rate, again.Duration = rep.SaleID, 100, 300*time.Millisecond
	rep2, err := loadtest.Run(context.Background(), again)
	if err != nil {
		t.Fatalf("Run on the existing sale: %v\n%s", err, rep2)
	}
	if rep2.SaleCreated || rep2.Units != 0 || rep2.Outcomes["sold_out"] != int(rep2.Requests) || rep2.Audit.Exact || !rep2.Audit.OK {
		t.Fatalf("existing sold-out sale:\n%s", rep2)
	}
}

// TestRunWritesTargets sets a sale up and writes the attack as a vegeta
// JSON targets file without sending it.
func TestRunWritesTargets(t *testing.T) {
	base := serveAPI(t)
	var buf bytes.Buffer
	cfg := config(base)
	cfg.Rate, cfg.Duration, cfg.Targets = 50, 2*time.Second, &buf
	rep, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TargetsWritten != 100 || rep.Requests != 0 {
		t.Fatalf("report:\n%s", rep)
	}
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	lines := 0
	for sc.Scan() {
		var tgt struct {
			Method string              `json:"method"`
			URL    string              `json:"url"`
			Body   []byte              `json:"body"` // base64
			Header map[string][]string `json:"header"`
		}
		if err := json.Unmarshal(sc.Bytes(), &tgt); err != nil {
			t.Fatalf("line %d: %v: %s", lines+1, err, sc.Bytes())
		}
		if tgt.Method != "POST" || tgt.URL != base+"/v1/sales/"+rep.SaleID+"/reservations" ||
			!bytes.Contains(tgt.Body, []byte(`"user_id"`)) || len(tgt.Header["Idempotency-Key"]) != 1 {
			t.Fatalf("line %d: %+v", lines+1, tgt)
		}
		lines++
	}
	if lines != 100 {
		t.Fatalf("%d targets, want 100", lines)
	}
	// The vegeta CLI's reader takes them too, and they point at a live
	// sale: the first one reserves.
	tr := vegeta.NewJSONTargeter(bytes.NewReader(buf.Bytes()), nil, nil)
	var tgt vegeta.Target
	if err := tr(&tgt); err != nil {
		t.Fatal(err)
	}
	req, err := tgt.Request()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first target answered %s", resp.Status)
	}
}

// TestRunRamp ramps in tiny steps. Whatever the machine sustains, the ramp
// stops at its max or after its first unsustained step, and reports the
// last sustained rate.
func TestRunRamp(t *testing.T) {
	base := serveAPI(t)
	cfg := config(base)
	cfg.Quantity = 0 // as many as the requests: the sale never sells out
	cfg.Ramp = &loadtest.Ramp{Start: 50, Step: 50, Max: 150, StepDuration: 400 * time.Millisecond, MinOK: 0.99, MaxP99: time.Second}
	var progress bytes.Buffer
	cfg.Progress = &progress
	rep, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, rep)
	}
	if len(rep.Steps) == 0 || len(rep.Steps) > 3 {
		t.Fatalf("steps: %+v", rep.Steps)
	}
	want := 0
	for i, s := range rep.Steps {
		if s.Rate != 50*(i+1) || s.Requests == 0 {
			t.Fatalf("step %d: %+v", i, s)
		}
		last := i == len(rep.Steps)-1
		switch {
		case !s.Sustainable && !last:
			t.Fatalf("the ramp went on after an unsustained step: %+v", rep.Steps)
		case s.Sustainable && last && s.Rate != 150:
			t.Fatalf("the ramp stopped at a sustained step under its max: %+v", rep.Steps)
		case s.Sustainable:
			want = s.Rate
		}
	}
	if rep.MaxSustainableRate != want || rep.Outcomes["sold_out"] != 0 || !rep.Audit.OK {
		t.Fatalf("report:\n%s", rep)
	}
	if n := strings.Count(progress.String(), "step "); n != len(rep.Steps) {
		t.Fatalf("%d progress lines for %d steps:\n%s", n, len(rep.Steps), progress.String())
	}
}

// TestRunSeveralSales creates three sales over the same stores and sells
// them all out: each is audited on its own, every unit held once, the
// shoppers spread over all three. Attacking them again as existing sales
// (comma-separated) meets only sold_out.
func TestRunSeveralSales(t *testing.T) {
	base := serveAPI(t)
	cfg := config(base)
	cfg.Sales, cfg.Quantity = 3, 60
	rep, err := loadtest.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, rep)
	}
	ids := strings.Split(rep.SaleID, ",")
	if len(ids) != 3 || len(rep.Sales) != 3 || rep.Units != 180 || rep.Holds != 180 || rep.Outcomes[loadtest.Created] != 180 {
		t.Fatalf("want 3 sales of 60 units sold, each unit once:\n%s", rep)
	}
	for i, s := range rep.Sales {
		a := s.Audit
		if s.SaleID != ids[i] || s.Units != 60 || !a.OK || !a.Exact || a.Held != 60 || a.Remaining != 0 || a.Holds != 60 {
			t.Fatalf("sale %d: %+v\n%s", i, s, rep)
		}
	}
	a := rep.Audit
	if !a.OK || a.Sales != 3 || a.Initial != 180 || a.Held != 180 || a.Holds != 180 || rep.RetryMismatches != 0 {
		t.Fatalf("combined audit %+v\n%s", a, rep)
	}
	if out := rep.String(); !strings.Contains(out, "sales:       3 (created, 180 units in all)") || strings.Count(out, "audit ok") != 3 {
		t.Fatalf("report:\n%s", out)
	}

	again := config(base)
	again.SaleID, again.Rate, again.Duration = rep.SaleID, 100, 300*time.Millisecond
	rep2, err := loadtest.Run(context.Background(), again)
	if err != nil {
		t.Fatalf("Run on the existing sales: %v\n%s", err, rep2)
	}
	if rep2.SaleCreated || len(rep2.Sales) != 3 || rep2.Outcomes["sold_out"] != int(rep2.Requests) || !rep2.Audit.OK {
		t.Fatalf("existing sold-out sales:\n%s", rep2)
	}
}

// TestConfigRefusesBadSales checks the sales settings: a count out of
// range, a count with existing sales, a bad or repeated id.
func TestConfigRefusesBadSales(t *testing.T) {
	for name, mut := range map[string]func(*loadtest.Config){
		"no sales":       func(c *loadtest.Config) { c.Sales = 0 },
		"too many":       func(c *loadtest.Config) { c.Sales = 1001 },
		"count and ids":  func(c *loadtest.Config) { c.Sales, c.SaleID = 2, "a,b" },
		"bad id in list": func(c *loadtest.Config) { c.SaleID = "a,b c" },
		"empty id":       func(c *loadtest.Config) { c.SaleID = "a,,b" },
		"repeated id":    func(c *loadtest.Config) { c.SaleID = "a,b,a" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config("http://127.0.0.1:1")
			mut(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatalf("%+v accepted", cfg)
			}
		})
	}
}
