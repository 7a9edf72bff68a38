package loadtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Run sets the sales up (creating stores and cfg.Sales sales, or reading
// those cfg.SaleID names), attacks them as cfg says, audits the stock of
// each and returns the report.
//
// It returns an error, with the report so far, when cfg is invalid, the
// set-up fails, the results or targets cannot be written or the stock
// cannot be read; ErrAuditFailed, with the full report, when the audit
// finds a problem; and ctx's error when ctx ends the attack early (the
// report and the audit then cover what was sent).
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	// One connection pool serves the set-up, every step and the audit.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, vegeta.DefaultConnections
	defer tr.CloseIdleConnections()
	c := &client{base: strings.TrimRight(cfg.Target, "/"), token: cfg.AdminToken, http: &http.Client{Timeout: cfg.Timeout, Transport: tr}}
	steps := cfg.steps()
	requests, d := planned(steps)
	run := strconv.FormatUint(rand.Uint64(), 36)

	var sales []sale
	var err error
	if ids := cfg.saleIDs(); len(ids) > 0 {
		for _, id := range ids {
			s, err := c.existingSale(ctx, id)
			if err != nil {
				return Report{Target: c.base}, err
			}
			sales = append(sales, s)
		}
	} else if sales, err = c.createSales(ctx, &cfg, run, cfg.quantity(requests/cfg.Sales), d); err != nil {
		return Report{Target: c.base}, err
	}
	rep := Report{Target: c.base, SaleCreated: sales[0].created}
	ids, targets, stores := make([]string, len(sales)), make([]saleTarget, len(sales)), 0
	for i, s := range sales {
		ids[i], targets[i] = s.id, saleTarget{url: c.base + "/v1/sales/" + s.id + "/reservations", stores: s.stores}
		rep.Units += s.units
		stores = max(stores, len(s.stores))
	}
	rep.SaleID = strings.Join(ids, ",")
	fmt.Fprintf(progress, "set up: sale %s, %d stores, %d units; %d requests planned over %s (seed %d)\n",
		rep.SaleID, stores, rep.Units, requests, d, cfg.Seed)
	g := newTargeter(targets, cfg.ShopperRadiusKm, cfg.RetryShare, "lt-"+run+"-", cfg.Seed)

	if cfg.Targets != nil {
		enc := vegeta.NewJSONTargetEncoder(cfg.Targets)
		var t vegeta.Target
		for range requests {
			g.target(&t)
			if err := enc.Encode(&t); err != nil {
				return rep, fmt.Errorf("write targets: %w", err)
			}
			rep.TargetsWritten++
		}
		return rep, nil
	}

	col, err := attack(ctx, &cfg, c.http, g, steps, &rep, progress)
	m := &col.all.metrics
	rep.Requests, rep.Retries, rep.Outcomes = m.Requests, g.retried(), col.all.outcomes
	rep.Latency, rep.Rate, rep.Throughput = latencyOf(m), m.Rate, col.all.throughput()
	if !col.soldOutAt.IsZero() {
		rep.SoldOutAfter = col.soldOutAt.Sub(m.Earliest)
	}
	rep.Holds, rep.RetryMismatches = len(col.holds), col.mismatches()
	if err != nil {
		return rep, err
	}

	// The audit runs even when ctx ended the attack: what was sent must
	// add up all the same.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
	defer cancel()
	audits := make([]SaleAudit, len(sales))
	for i, s := range sales {
		st, err := c.stock(actx, s.id)
		if err != nil {
			return rep, fmt.Errorf("audit of sale %s: %w", s.id, err)
		}
		a := audit(st, seen{holds: col.holdsOf[s.id], mismatches: col.mismatchesOf[s.id], exact: s.created && col.unanswered == 0})
		audits[i] = SaleAudit{SaleID: s.id, Units: s.units, Audit: a}
	}
	rep.Audit = combine(audits)
	if len(audits) > 1 { // one sale's audit says it all
		rep.Sales = audits
	}
	switch {
	case !rep.Audit.OK:
		return rep, fmt.Errorf("%w: %d problems with sale %s", ErrAuditFailed, len(rep.Audit.Problems), rep.SaleID)
	case ctx.Err() != nil:
		return rep, fmt.Errorf("attack interrupted: %w", ctx.Err())
	}
	return rep, nil
}

// attack runs the steps through httpc, writing every result to
// cfg.Results, and records the ramp's steps in rep. It returns the
// collected results, closed, and an error when the results cannot be
// written.
func attack(ctx context.Context, cfg *Config, httpc *http.Client, g *targeter, steps []step, rep *Report, progress io.Writer) (*collector, error) {
	var enc vegeta.Encoder
	if cfg.Results != nil {
		enc = vegeta.NewEncoder(cfg.Results)
	}
	maxWorkers := cfg.MaxWorkers
	if maxWorkers == 0 {
		maxWorkers = vegeta.DefaultMaxWorkers
	}

	col := newCollector()
	defer col.all.metrics.Close()
	var werr error
	for _, st := range steps {
		name, step := "flashsale", newTally()
		if cfg.Ramp != nil {
			name = strconv.Itoa(st.rate) + "/s"
		}
		// An attacker times its duration from its first attack: one per
		// step.
		atk := vegeta.NewAttacker(vegeta.Client(httpc), vegeta.Workers(cfg.Workers), vegeta.MaxWorkers(maxWorkers), vegeta.MaxBody(64<<10))
		stop := context.AfterFunc(ctx, func() { atk.Stop() })
		for r := range atk.Attack(g.target, vegeta.ConstantPacer{Freq: st.rate, Per: time.Second}, st.duration, name) {
			if enc != nil && werr == nil {
				if werr = enc.Encode(r); werr != nil {
					atk.Stop()
				}
			}
			col.add(r, step)
		}
		stop()
		if werr != nil {
			return col, fmt.Errorf("write results: %w", werr)
		}
		if cfg.Ramp == nil || ctx.Err() != nil {
			break
		}
		s := cfg.Ramp.judge(st, step)
		rep.Steps = append(rep.Steps, s)
		verdict := "sustained"
		if !s.Sustainable {
			verdict = "not sustained: " + s.Reason
		}
		fmt.Fprintf(progress, "step %d/s: %d requests, %.2f%% ok, p99 %s, %.1f/s: %s\n",
			s.Rate, s.Requests, 100*s.OKShare, ms(s.P99), s.Throughput, verdict)
		if !s.Sustainable {
			break
		}
		rep.MaxSustainableRate = st.rate
	}
	return col, nil
}

// collector follows the answers of a whole attack.
type collector struct {
	all          *tally
	soldOutAt    time.Time         // when the first sold_out answer came
	holds        map[string]bool   // distinct holds answered
	holdsOf      map[string]int    // sale → distinct holds answered
	holdOf       map[string]string // shopper → first hold answered
	createdFor   map[string]bool   // shoppers answered 201
	mismatchesOf map[string]int    // sale → answers contradicting an earlier one of the shopper
	unanswered   int               // transport errors, timeouts and 5xx: a hold may exist unseen
}

func newCollector() *collector {
	return &collector{all: newTally(), holds: map[string]bool{}, holdsOf: map[string]int{}, holdOf: map[string]string{},
		createdFor: map[string]bool{}, mismatchesOf: map[string]int{}}
}

// mismatches returns the answers that contradicted an earlier one of the
// same shopper, over every sale.
func (c *collector) mismatches() int {
	n := 0
	for _, m := range c.mismatchesOf {
		n += m
	}
	return n
}

// add records r in the collector and in step. Each shopper sends one key,
// so every answer of a shopper that names a hold must name the same one,
// and only one of them may say it created it.
func (c *collector) add(r *vegeta.Result, step *tally) {
	a := readAnswer(r)
	c.all.add(r, a.outcome)
	step.add(r, a.outcome)
	switch {
	case a.holdID != "":
		if !c.holds[a.holdID] {
			c.holds[a.holdID] = true
			c.holdsOf[a.saleID]++
		}
		first, seen := c.holdOf[a.userID]
		if !seen {
			c.holdOf[a.userID] = a.holdID
		}
		if seen && first != a.holdID || a.outcome == Created && c.createdFor[a.userID] {
			c.mismatchesOf[a.saleID]++
		}
		if a.outcome == Created {
			c.createdFor[a.userID] = true
		}
	case a.outcome == "sold_out":
		if end := r.End(); c.soldOutAt.IsZero() || end.Before(c.soldOutAt) {
			c.soldOutAt = end
		}
	case r.Code == 0 || r.Code >= 500:
		c.unanswered++
	}
}
