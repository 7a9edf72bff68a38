package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/flashsale/flashsale/loadtest"
)

const loadtestUsage = `Usage: flashsale loadtest [flags]

Attacks a deployment over HTTP with a flash sale, with vegeta: creates stores
and a sale (or uses -sale), sends reservations of distinct shoppers around the
stores, some of them retried with the same Idempotency-Key, at -rate for
-duration or in a ramp (-ramp-start > 0) that stops at the first step not
sustained, then audits the sale's stock. It prints outcome counts, latency
percentiles, the time to sell out, the ramp's steps and the audit, and exits 1
when the audit fails. Every result goes to -results for vegeta report and
vegeta plot. With -targets-out it sets the sale up, writes the requests as a
vegeta JSON targets file and exits without attacking.

Flags (each also reads the environment variable named in its help):
`

// loadtestArgs are the settings of the loadtest command.
type loadtestArgs struct {
	cfg        loadtest.Config
	ramp       loadtest.Ramp
	results    string
	targetsOut string
	json       bool
}

// parseLoadtest reads the flags of the loadtest command, then the
// environment variables of the flags not given, and validates them.
func (m *Main) parseLoadtest(args []string) error {
	a := &m.lt
	a.cfg, a.ramp, a.results = loadtest.DefaultConfig(), loadtest.DefaultRamp(), "flashsale-loadtest.bin"
	a.ramp.Start = 0
	c, r := &a.cfg, &a.ramp
	fs := flag.NewFlagSet("flashsale loadtest", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), loadtestUsage); fs.PrintDefaults() }
	ef := newEnvFlags(fs)
	// Every flag reads FLASHSALE_LOADTEST_<NAME>, but the admin token is
	// the deployment's own.
	e := func(name, usage string) string {
		env := "FLASHSALE_LOADTEST_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if name == "admin-token" {
			env = "FLASHSALE_ADMIN_TOKEN"
		}
		return ef.usage(name, env, usage)
	}
	fs.StringVar(&c.Target, "target", c.Target, e("target", "base URL of the deployment"))
	fs.StringVar(&c.AdminToken, "admin-token", "", e("admin-token", "operator bearer token of the deployment (required)"))
	fs.StringVar(&c.SaleID, "sale", "", e("sale", "attack this existing sale (or these, comma-separated) instead of creating stores and sales"))
	fs.IntVar(&c.Sales, "sales", c.Sales, e("sales", "how many sales to create over the stores; each shopper picks one at random"))
	fs.IntVar(&c.Stores, "stores", c.Stores, e("stores", "stores of the created sale"))
	fs.IntVar(&c.Quantity, "quantity", 0, e("quantity", "units of the created sale (0: a tenth of the requests at a fixed rate, as many as the requests in a ramp)"))
	fs.IntVar(&c.PerUserLimit, "per-user-limit", c.PerUserLimit, e("per-user-limit", "per-user limit of the created sale"))
	fs.Var(latLon{&c.Center}, "center", e("center", "lat,lon around which the stores are placed"))
	fs.Float64Var(&c.RadiusKm, "radius-km", c.RadiusKm, e("radius-km", "how far from -center the stores are placed"))
	fs.Float64Var(&c.MaxDistanceKm, "max-distance-km", c.MaxDistanceKm, e("max-distance-km", "how far the created sale sends a shopper"))
	fs.Float64Var(&c.ShopperRadiusKm, "shopper-radius-km", c.ShopperRadiusKm, e("shopper-radius-km", "how far from a random store each shopper stands"))
	fs.DurationVar(&c.StartIn, "start-in", 0, e("start-in", "start the created sale this long after its set-up (earlier shoppers get not_started)"))
	fs.IntVar(&c.Rate, "rate", c.Rate, e("rate", "requests per second of a fixed-rate attack"))
	fs.DurationVar(&c.Duration, "duration", c.Duration, e("duration", "length of a fixed-rate attack"))
	fs.IntVar(&r.Start, "ramp-start", 0, e("ramp-start", "first rate of a ramp (0: no ramp, a fixed rate)"))
	fs.IntVar(&r.Step, "ramp-step", r.Step, e("ramp-step", "rate added at each step of the ramp"))
	fs.DurationVar(&r.StepDuration, "ramp-step-duration", r.StepDuration, e("ramp-step-duration", "length of each step of the ramp"))
	fs.IntVar(&r.Max, "ramp-max", r.Max, e("ramp-max", "last rate of the ramp"))
	fs.Float64Var(&r.MinOK, "ramp-min-ok", r.MinOK, e("ramp-min-ok", "least share of correct answers (holds and sold_out, no_store_stock, limit_reached, not_started) of a sustained step"))
	fs.DurationVar(&r.MaxP99, "ramp-max-p99", r.MaxP99, e("ramp-max-p99", "highest p99 latency of a sustained step"))
	fs.Float64Var(&c.RetryShare, "retry-share", c.RetryShare, e("retry-share", "share of requests repeating an earlier shopper's request, key and body"))
	fs.Uint64Var(&c.Workers, "workers", c.Workers, e("workers", "initial attack workers"))
	fs.Uint64Var(&c.MaxWorkers, "max-workers", 0, e("max-workers", "most attack workers (0: no bound)"))
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, e("timeout", "bound on each request"))
	fs.StringVar(&a.results, "results", a.results, e("results", `file for every result in vegeta's binary format ("": none)`))
	fs.StringVar(&a.targetsOut, "targets-out", "", e("targets-out", "write the attack as a vegeta JSON targets file here instead of sending it"))
	fs.Uint64Var(&c.Seed, "seed", 0, e("seed", "seed of the points and retries (0: random)"))
	fs.BoolVar(&a.json, "json", false, e("json", "print the report as JSON"))
	set, err := ef.parse(args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var errs []error
	if r.Start > 0 {
		c.Ramp = r
	}
	switch {
	case c.Ramp != nil && (set["rate"] || set["duration"]):
		errs = append(errs, errors.New("-rate and -duration make a fixed-rate attack; a ramp (-ramp-start) takes -ramp-step, -ramp-step-duration and -ramp-max"))
	case c.Ramp == nil && (set["ramp-step"] || set["ramp-step-duration"] || set["ramp-max"] || set["ramp-min-ok"] || set["ramp-max-p99"]):
		errs = append(errs, errors.New("the -ramp-* flags need -ramp-start to select a ramp"))
	case c.Ramp != nil && a.targetsOut != "":
		errs = append(errs, errors.New("-targets-out writes a fixed-rate attack (-rate × -duration requests) for the vegeta CLI; it does not take a ramp"))
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// runLoadtest runs the load test and prints its report; it returns an
// error when the test could not run or its audit failed.
func (m *Main) runLoadtest(ctx context.Context) error {
	a := m.lt
	cfg := a.cfg
	cfg.Progress = m.Stderr
	out, path := &cfg.Results, a.results
	if a.targetsOut != "" {
		out, path = &cfg.Targets, a.targetsOut
	}
	var w *bufio.Writer
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
		*out = w
	}
	rep, err := loadtest.Run(ctx, cfg)
	if w != nil {
		if ferr := w.Flush(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("write %s: %w", path, ferr))
		}
	}
	if rep.SaleID == "" { // the set-up failed: nothing to report or keep
		if path != "" {
			os.Remove(path)
		}
		return err
	}
	if a.json {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return errors.Join(enc.Encode(rep), err)
	}
	fmt.Fprint(m.Stdout, rep)
	switch {
	case a.targetsOut != "":
		fmt.Fprintf(m.Stdout, "\nAttack with the vegeta CLI, then audit each sale across Redis and PostgreSQL:\n"+
			"  vegeta attack -lazy -format=json -targets=%s -rate=%d -duration=%s | tee results.bin | vegeta report\n",
			a.targetsOut, cfg.Rate, cfg.Duration)
		for id := range strings.SplitSeq(rep.SaleID, ",") {
			fmt.Fprintf(m.Stdout, "  flashsale audit -sale %s -wait 30s\n", id)
		}
	case path != "" && rep.Requests > 0:
		fmt.Fprintf(m.Stdout, "results:     %s (vegeta report %[1]s; vegeta plot %[1]s > plot.html)\n", path)
	}
	return err
}

// latLon is a flag of the form lat,lon.
type latLon struct{ p *loadtest.Point }

func (l latLon) String() string {
	if l.p == nil {
		return ""
	}
	return strconv.FormatFloat(l.p.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(l.p.Lon, 'f', -1, 64)
}

func (l latLon) Set(s string) error {
	la, lo, ok := strings.Cut(s, ",")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(la), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%q is not lat,lon such as 52.52,13.405", s)
	}
	*l.p = loadtest.Point{Lat: lat, Lon: lon}
	return nil
}
