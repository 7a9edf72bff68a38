package loadtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Outcomes of a reservation request besides the error codes of the API.
const (
	Created        = "created"         // 201: a new hold
	Replayed       = "replayed"        // 200: the hold of an earlier request with the same key
	Timeout        = "timeout"         // no answer within the timeout
	TransportError = "transport_error" // no HTTP answer: refused, reset, …
)

// correct are the outcomes a healthy deployment answers under load: a hold,
// or a business refusal. Anything else (5xx such as overloaded, timeouts,
// transport errors, unexpected codes) counts against a ramp step.
var correct = map[string]bool{
	Created: true, Replayed: true, "sold_out": true, "no_store_stock": true, "limit_reached": true, "not_started": true,
}

// answer is what one result says.
type answer struct {
	outcome                string
	holdID, userID, saleID string // of a 201 or 200
}

// readAnswer classifies a result: created or replayed with the hold's ids,
// the error code of an error body, timeout, transport_error, or
// http_<status> for anything else.
func readAnswer(r *vegeta.Result) answer {
	switch r.Code {
	case 0:
		if e := strings.ToLower(r.Error); strings.Contains(e, "timeout") || strings.Contains(e, "deadline exceeded") {
			return answer{outcome: Timeout}
		}
		return answer{outcome: TransportError}
	case 200, 201:
		var h struct {
			HoldID string `json:"hold_id"`
			UserID string `json:"user_id"`
			SaleID string `json:"sale_id"`
		}
		if json.Unmarshal(r.Body, &h) != nil || h.HoldID == "" {
			return answer{outcome: "http_" + strconv.Itoa(int(r.Code))}
		}
		a := answer{outcome: Created, holdID: h.HoldID, userID: h.UserID, saleID: h.SaleID}
		if r.Code == 200 {
			a.outcome = Replayed
		}
		return a
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &e) != nil || e.Error.Code == "" {
		return answer{outcome: "http_" + strconv.Itoa(int(r.Code))}
	}
	return answer{outcome: e.Error.Code}
}

// tally counts a set of results.
type tally struct {
	metrics  vegeta.Metrics
	outcomes map[string]int
}

func newTally() *tally { return &tally{outcomes: map[string]int{}} }

func (t *tally) add(r *vegeta.Result, outcome string) {
	t.metrics.Add(r)
	t.outcomes[outcome]++
}

// correct returns how many answers were correct.
func (t *tally) correct() int {
	n := 0
	for o, c := range t.outcomes {
		if correct[o] {
			n += c
		}
	}
	return n
}

// throughput returns the correct answers per second from the first request
// to the last answer, as vegeta computes its throughput.
func (t *tally) throughput() float64 {
	d := (t.metrics.Duration + t.metrics.Wait).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(t.correct()) / d
}

// Latency is a set of latency percentiles.
type Latency struct {
	P50  time.Duration `json:"p50"`
	P90  time.Duration `json:"p90"`
	P99  time.Duration `json:"p99"`
	P999 time.Duration `json:"p999"`
	Max  time.Duration `json:"max"`
}

func latencyOf(m *vegeta.Metrics) Latency {
	l := m.Latencies
	return Latency{P50: l.P50, P90: l.P90, P99: l.P99, P999: l.Quantile(0.999), Max: l.Max}
}

// Step is one step of a ramp and the verdict on it.
type Step struct {
	Rate       int            `json:"rate"`
	Requests   uint64         `json:"requests"`
	Outcomes   map[string]int `json:"outcomes"`
	OKShare    float64        `json:"ok_share"`   // share of correct answers
	P99        time.Duration  `json:"p99"`        // 99th percentile latency
	Throughput float64        `json:"throughput"` // correct answers per second
	// Sustainable says whether the deployment kept up; Reason says why
	// not when it did not.
	Sustainable bool   `json:"sustainable"`
	Reason      string `json:"reason,omitempty"`
}

// judge returns the step st, whose results t holds, with the ramp's
// verdict on it.
func (r *Ramp) judge(st step, t *tally) Step {
	t.metrics.Close()
	s := Step{Rate: st.rate, Requests: t.metrics.Requests, Outcomes: t.outcomes, P99: t.metrics.Latencies.P99, Throughput: t.throughput()}
	if s.Requests > 0 {
		s.OKShare = float64(t.correct()) / float64(s.Requests)
	}
	offered := float64(st.rate)
	switch planned, _ := planned([]step{st}); {
	case float64(s.Requests) < minThroughputShare*float64(planned):
		s.Reason = fmt.Sprintf("%d of %d requests sent: the attacker fell behind (more workers or machines needed)", s.Requests, planned)
	case s.OKShare < r.MinOK:
		s.Reason = fmt.Sprintf("%.2f%% correct answers, under %.2f%%", 100*s.OKShare, 100*r.MinOK)
	case s.Throughput < minThroughputShare*offered:
		s.Reason = fmt.Sprintf("%.1f correct answers/s, under %.0f%% of the %d/s offered", s.Throughput, 100*minThroughputShare, st.rate)
	case s.P99 > r.MaxP99:
		s.Reason = fmt.Sprintf("p99 %s over %s", s.P99.Round(time.Microsecond), r.MaxP99)
	default:
		s.Sustainable = true
	}
	return s
}

// Report is what a load test found. Durations are in nanoseconds in JSON,
// as in vegeta's JSON report.
type Report struct {
	Target string `json:"target"`
	// SaleID is the sale attacked, or the sales, comma-separated (as
	// Config.SaleID takes them).
	SaleID      string `json:"sale_id"`
	SaleCreated bool   `json:"sale_created"`
	// Units is the sales' global stock when the attack began (their
	// initial stock for created sales).
	Units int `json:"units"`
	// TargetsWritten is how many targets were written instead of sent.
	TargetsWritten int `json:"targets_written,omitempty"`

	Requests uint64 `json:"requests"`
	// Retries is how many requests repeated an earlier shopper's request.
	Retries  int            `json:"retries"`
	Outcomes map[string]int `json:"outcomes"`
	Latency  Latency        `json:"latency"`
	// Rate is the requests sent per second; Throughput the correct answers
	// per second.
	Rate       float64 `json:"rate"`
	Throughput float64 `json:"throughput"`
	// SoldOutAfter is the time from the first request to the first
	// sold_out answer; 0 when none came.
	SoldOutAfter time.Duration `json:"sold_out_after,omitempty"`
	// Holds is how many distinct holds the attack was answered (201 or
	// 200); RetryMismatches how many answers named another hold than the
	// one the same shopper and key were answered before, or created a
	// second one. It must be 0.
	Holds           int `json:"holds"`
	RetryMismatches int `json:"retry_mismatches"`

	// Steps and MaxSustainableRate describe a ramp: the highest rate of a
	// sustained step, 0 when the first was not.
	Steps              []Step `json:"steps,omitempty"`
	MaxSustainableRate int    `json:"max_sustainable_rate,omitempty"`

	// Audit is the audit of the sale, or of every sale together: their
	// counts summed, every sale's problems named by its id; Sales gives
	// each sale's own when there are several.
	Audit Audit       `json:"audit"`
	Sales []SaleAudit `json:"sales,omitempty"`
}

// SaleAudit is one sale's audit in an attack on several.
type SaleAudit struct {
	SaleID string `json:"sale_id"`
	Units  int    `json:"units"`
	Audit  Audit  `json:"audit"`
}

// outcomeRank orders the outcomes of the report: holds, business refusals,
// then failures; unknown codes come last.
var outcomeRank = map[string]int{
	Created: 1, Replayed: 2, "sold_out": 3, "no_store_stock": 4, "limit_reached": 5, "not_started": 6, "ended": 7,
	"overloaded": 8, "unavailable": 9, Timeout: 10, TransportError: 11,
}

func sortedOutcomes(m map[string]int) []string {
	rank := func(o string) int { return cmp.Or(outcomeRank[o], len(outcomeRank)+1) }
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

// String formats the report for people.
func (r Report) String() string {
	var b strings.Builder
	origin := "existing"
	if r.SaleCreated {
		origin = "created"
	}
	if n := strings.Count(r.SaleID, ",") + 1; n > 1 {
		fmt.Fprintf(&b, "target:      %s\nsales:       %d (%s, %d units in all): %s\n", r.Target, n, origin, r.Units, r.SaleID)
	} else {
		fmt.Fprintf(&b, "target:      %s\nsale:        %s (%s, %d units)\n", r.Target, r.SaleID, origin, r.Units)
	}
	if r.TargetsWritten > 0 {
		fmt.Fprintf(&b, "targets:     %d written, none sent\n", r.TargetsWritten)
		return b.String()
	}
	fmt.Fprintf(&b, "requests:    %d (%d retries of an earlier shopper), %.1f/s sent, %.1f correct answers/s\n",
		r.Requests, r.Retries, r.Rate, r.Throughput)
	b.WriteString("outcomes:\n")
	for _, o := range sortedOutcomes(r.Outcomes) {
		fmt.Fprintf(&b, "  %-16s %8d\n", o, r.Outcomes[o])
	}
	l := r.Latency
	fmt.Fprintf(&b, "latency:     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	if r.SoldOutAfter > 0 {
		fmt.Fprintf(&b, "sold out:    after %s\n", r.SoldOutAfter.Round(time.Millisecond))
	} else {
		b.WriteString("sold out:    no\n")
	}
	fmt.Fprintf(&b, "holds:       %d distinct, %d retry mismatches\n", r.Holds, r.RetryMismatches)
	if len(r.Steps) > 0 {
		b.WriteString("ramp:\n")
		for _, s := range r.Steps {
			verdict := "sustained"
			if !s.Sustainable {
				verdict = "NOT sustained: " + s.Reason
			}
			fmt.Fprintf(&b, "  %6d/s  %7d requests  %6.2f%% ok  p99 %-10s %8.1f/s  %s\n",
				s.Rate, s.Requests, 100*s.OKShare, ms(s.P99), s.Throughput, verdict)
		}
		fmt.Fprintf(&b, "max sustainable rate: %d/s\n", r.MaxSustainableRate)
	}
	if len(r.Sales) > 1 {
		b.WriteString("by sale:\n")
		for _, s := range r.Sales {
			verdict := "audit ok"
			if !s.Audit.OK {
				verdict = fmt.Sprintf("audit FAILED (%d problems)", len(s.Audit.Problems))
			}
			fmt.Fprintf(&b, "  %-24s %6d units  %6d remaining  %6d holds answered  %s\n", s.SaleID, s.Units, s.Audit.Remaining, s.Audit.Holds, verdict)
		}
	}
	b.WriteString(r.Audit.String())
	return b.String()
}
