package loadtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Point is a place on Earth in degrees.
type Point struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

func (p Point) valid() bool {
	return !math.IsNaN(p.Lat) && !math.IsNaN(p.Lon) && p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180
}

// Berlin is the default centre of the stores of a created sale.
var Berlin = Point{Lat: 52.52, Lon: 13.405}

// Config describes a load test. Start from DefaultConfig; Run validates
// it.
type Config struct {
	// Target is the base URL of the deployment (default
	// http://127.0.0.1:8080).
	Target string
	// AdminToken is the operator bearer token: it creates the stores and
	// the sale and reads the stock for the audit. Required.
	AdminToken string
	// SaleID names an existing sale to attack, or several, comma-separated.
	// Empty (the default): Run creates stores and Sales sales of its own,
	// with ids unique to the run.
	SaleID string
	// Sales is how many sales Run creates over the run's stores (default
	// 1). Each new shopper picks one of them at random, as when several
	// products launch at once; each sale is audited on its own.
	Sales int

	// Stores is how many stores a created sale has (default 20), placed at
	// random within RadiusKm (default 10) of Center (default Berlin).
	Stores   int
	Center   Point
	RadiusKm float64
	// Quantity is the units of each created sale, spread evenly over its
	// stores. 0 (the default) picks one: at a fixed rate a tenth of the
	// requests the sale can expect (its share of them), so that it sells
	// out early and the rest of the attack meets the sold-out path; in a
	// ramp as many as those requests, so that sold_out answers never make a
	// step look cheaper than it is.
	Quantity int
	// PerUserLimit is the per-user limit of a created sale (default 1).
	PerUserLimit int
	// MaxDistanceKm is how far a shopper of a created sale may be sent
	// (default 25: every store is in reach of every shopper at the default
	// radii).
	MaxDistanceKm float64
	// StartIn delays the start of a created sale after its set-up; shoppers
	// arriving earlier are answered not_started. Its hold TTL and end are
	// set so that nothing expires or ends during the attack.
	StartIn time.Duration

	// ShopperRadiusKm is how far from a random store of the sale each
	// shopper stands (default 2).
	ShopperRadiusKm float64
	// RetryShare is the share of requests that repeat an earlier shopper's
	// request exactly: same user, Idempotency-Key and body (default 0.1).
	RetryShare float64

	// Rate (requests per second) and Duration make a fixed-rate attack
	// (default 500/s for 10s). Ramp replaces them when set.
	Rate     int
	Duration time.Duration
	// Ramp, when set, attacks in steps of increasing rate instead.
	Ramp *Ramp

	// Workers is how many attack workers start (default 10); vegeta adds
	// more, up to MaxWorkers (0, the default: no bound), when answers are
	// slow.
	Workers    uint64
	MaxWorkers uint64
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// Seed makes the stores' and shoppers' points and the retries
	// reproducible; 0 (the default) picks a random seed. Ids stay unique
	// to the run either way.
	Seed uint64

	// Results, when set, receives every result in vegeta's binary format
	// (`vegeta report`, `vegeta plot` and `vegeta encode` read it).
	Results io.Writer
	// Targets, when set, receives the requests of the attack as a vegeta
	// JSON targets file instead of their being sent: Run sets the sale up,
	// writes as many targets as the attack would send, and returns without
	// attacking or auditing.
	Targets io.Writer
	// Progress, when set, receives a line when the set-up is done and one
	// per ramp step.
	Progress io.Writer
}

// Ramp is an attack in steps of increasing rate that stops after the first
// step the deployment does not sustain, or after the step at Max.
type Ramp struct {
	// Start, Step and Max are rates in requests per second: the steps are
	// Start, Start+Step, … and Max last.
	Start, Step, Max int
	// StepDuration is how long each step lasts.
	StepDuration time.Duration
	// MinOK is the least share of correct answers in a sustained step:
	// created, replayed, sold_out, no_store_stock, limit_reached and
	// not_started are correct; 5xx (overloaded, unavailable), other errors,
	// timeouts and transport errors are not.
	MinOK float64
	// MaxP99 is the highest 99th percentile latency of a sustained step.
	MaxP99 time.Duration
}

// minThroughputShare is the least share of a step's offered rate that must
// be answered correctly per second for the step to be sustained: below it,
// the deployment (or the attacker) fell behind.
const minThroughputShare = 0.9

// DefaultConfig returns the documented defaults; set AdminToken, and Ramp
// for a ramp.
func DefaultConfig() Config {
	return Config{
		Target:          "http://127.0.0.1:8080",
		Sales:           1,
		Stores:          20,
		Center:          Berlin,
		RadiusKm:        10,
		PerUserLimit:    1,
		MaxDistanceKm:   25,
		ShopperRadiusKm: 2,
		RetryShare:      0.1,
		Rate:            500,
		Duration:        10 * time.Second,
		Workers:         10,
		Timeout:         10 * time.Second,
	}
}

// DefaultRamp returns a ramp from 100/s in steps of 100/s up to 5000/s,
// 5 s each, sustained while 99% of the answers are correct and the p99
// stays under 500 ms.
func DefaultRamp() Ramp {
	return Ramp{Start: 100, Step: 100, Max: 5000, StepDuration: 5 * time.Second, MinOK: 0.99, MaxP99: 500 * time.Millisecond}
}

// idPattern is what the API accepts as a sale or store id.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks c and returns an error naming every problem found; Run
// calls it first.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("target %q must be an http(s) base URL such as http://127.0.0.1:8080", c.Target)
	}
	if c.AdminToken == "" {
		bad("the admin token is required: it creates the sale and reads its stock for the audit")
	}
	ids := c.saleIDs()
	for _, id := range ids {
		if !idPattern.MatchString(id) {
			bad("sale id %q must be 1-64 letters, digits, '_' or '-'", id)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		bad("sale ids %q name a sale twice", c.SaleID)
	}
	if c.Sales < 1 || c.Sales > 1000 {
		bad("sales must be 1-1000, not %d", c.Sales)
	} else if c.SaleID != "" && c.Sales != 1 {
		bad("sales (%d) is how many sales to create; to attack several existing ones, list them in the sale id, comma-separated", c.Sales)
	}
	if c.Stores < 1 || c.Stores > 10000 {
		bad("stores must be 1-10000, not %d", c.Stores)
	}
	if !c.Center.valid() {
		bad("centre %v is not a valid latitude and longitude", c.Center)
	}
	if c.RadiusKm < 0 || c.RadiusKm > 1000 || c.ShopperRadiusKm < 0 || c.ShopperRadiusKm > 1000 {
		bad("the store and shopper radii must be 0-1000 km")
	}
	if c.Quantity < 0 {
		bad("quantity must not be negative (0 picks one)")
	}
	if c.PerUserLimit < 1 || c.PerUserLimit > 1000 {
		bad("per-user limit must be 1-1000, not %d", c.PerUserLimit)
	}
	if !(c.MaxDistanceKm > 0 && c.MaxDistanceKm <= 20000) {
		bad("max distance must be in (0, 20000] km")
	}
	if c.StartIn < 0 {
		bad("start-in must not be negative")
	}
	if !(c.RetryShare >= 0 && c.RetryShare < 1) {
		bad("retry share must be in [0, 1), not %g", c.RetryShare)
	}
	if r := c.Ramp; r != nil {
		if r.Start < 1 || r.Step < 1 || r.Max < r.Start {
			bad("ramp needs start ≥ 1, step ≥ 1 and max ≥ start (got %d, %d, %d)", r.Start, r.Step, r.Max)
		}
		if r.StepDuration <= 0 {
			bad("ramp step duration must be positive")
		}
		if !(r.MinOK > 0 && r.MinOK <= 1) || r.MaxP99 <= 0 {
			bad("ramp min-ok must be in (0, 1] and max-p99 positive")
		}
	} else if c.Rate < 1 || c.Duration <= 0 {
		bad("rate must be at least 1 per second and duration positive (got %d, %s)", c.Rate, c.Duration)
	}
	if c.Workers < 1 || (c.MaxWorkers != 0 && c.MaxWorkers < c.Workers) {
		bad("workers must be at least 1, and max workers 0 (no bound) or at least workers")
	}
	if c.Timeout <= 0 {
		bad("timeout must be positive")
	}
	return errors.Join(errs...)
}

// step is one constant-rate phase of an attack.
type step struct {
	rate     int
	duration time.Duration
}

// steps returns the phases of the attack: one at a fixed rate, or the
// ramp's.
func (c *Config) steps() []step {
	r := c.Ramp
	if r == nil {
		return []step{{c.Rate, c.Duration}}
	}
	var out []step
	for rate := r.Start; rate < r.Max; rate += r.Step {
		out = append(out, step{rate, r.StepDuration})
	}
	return append(out, step{r.Max, r.StepDuration})
}

// planned returns how many requests steps send and how long they last.
func planned(steps []step) (requests int, d time.Duration) {
	for _, s := range steps {
		requests += int(math.Ceil(float64(s.rate) * s.duration.Seconds()))
		d += s.duration
	}
	return requests, d
}

// saleIDs returns the existing sales SaleID names.
func (c *Config) saleIDs() []string {
	if c.SaleID == "" {
		return nil
	}
	return strings.Split(c.SaleID, ",")
}

// quantity returns the units of a created sale that can expect n of the
// attack's requests.
func (c *Config) quantity(n int) int {
	switch {
	case c.Quantity > 0:
		return c.Quantity
	case c.Ramp != nil:
		return max(n, 1)
	}
	return max(n/10, 1)
}
