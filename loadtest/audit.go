package loadtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrAuditFailed reports that the sale's stock does not add up after the
// attack, or that retries were answered another hold: see Audit.Problems.
var ErrAuditFailed = errors.New("audit failed")

// Audit is the check of a sale's stock after an attack: for the sale and
// every store, initial = remaining + held + confirmed and no count is
// negative; the stores' held and confirmed add up to the sale's; the holds
// the attack was answered match the held and confirmed units (exactly, for
// a sale the load test created and every request of which was answered;
// at most, otherwise); and no retry was answered another hold.
type Audit struct {
	OK        bool `json:"ok"`
	Initial   int  `json:"initial"`
	Remaining int  `json:"remaining"`
	Held      int  `json:"held"`
	Confirmed int  `json:"confirmed"`
	// Stores is how many stores' counts were checked; Sales, when the
	// audit sums several sales', how many (their stores are counted once
	// per sale).
	Stores int `json:"stores"`
	Sales  int `json:"sales,omitempty"`
	// Holds is how many distinct holds the attack was answered; Exact
	// whether they had to equal held + confirmed.
	Holds    int      `json:"holds"`
	Exact    bool     `json:"exact"`
	Problems []string `json:"problems,omitempty"`
}

// seen is what the attack was answered, for the audit to compare.
type seen struct {
	holds      int  // distinct holds answered with 201 or 200
	mismatches int  // answers naming another hold than the shopper's first
	exact      bool // holds must equal held + confirmed
}

// audit checks st against what the attack saw.
func audit(st stock, s seen) Audit {
	a := Audit{Initial: st.Initial, Remaining: st.Remaining, Held: st.Held, Confirmed: st.Confirmed,
		Stores: len(st.Stores), Holds: s.holds, Exact: s.exact}
	bad := func(format string, args ...any) { a.Problems = append(a.Problems, fmt.Sprintf(format, args...)) }
	check := func(what string, c counts) {
		if c.Remaining < 0 || c.Held < 0 || c.Confirmed < 0 {
			bad("%s: negative count (remaining %d, held %d, confirmed %d)", what, c.Remaining, c.Held, c.Confirmed)
		}
		if c.Initial != c.Remaining+c.Held+c.Confirmed {
			bad("%s: initial %d != remaining %d + held %d + confirmed %d: oversold or lost units", what, c.Initial, c.Remaining, c.Held, c.Confirmed)
		}
	}
	check("global", st.counts)
	taken, sum := st.Held+st.Confirmed, 0
	for _, id := range slices.Sorted(maps.Keys(st.Stores)) {
		c := st.Stores[id]
		check("store "+id, c)
		sum += c.Held + c.Confirmed
	}
	if sum != taken {
		bad("the stores' held + confirmed sum to %d, the sale's to %d", sum, taken)
	}
	switch {
	case s.exact && s.holds != taken:
		bad("the attack was answered %d distinct holds, but the sale counts %d held + confirmed", s.holds, taken)
	case !s.exact && s.holds > taken:
		bad("the attack was answered %d distinct holds, more than the %d held + confirmed the sale counts (holds cancelled or expired meanwhile would explain it)", s.holds, taken)
	}
	if s.mismatches > 0 {
		bad("%d retries were answered another hold than their shopper's first request (idempotency broken)", s.mismatches)
	}
	a.OK = len(a.Problems) == 0
	return a
}

// combine sums the audits of several sales into one: OK when every one
// is, their problems named by sale (a single sale's audit is returned as
// it is).
func combine(sales []SaleAudit) Audit {
	if len(sales) == 1 {
		return sales[0].Audit
	}
	a := Audit{Exact: true, Sales: len(sales)}
	for _, s := range sales {
		x := s.Audit
		a.Initial += x.Initial
		a.Remaining += x.Remaining
		a.Held += x.Held
		a.Confirmed += x.Confirmed
		a.Stores += x.Stores
		a.Holds += x.Holds
		a.Exact = a.Exact && x.Exact
		for _, p := range x.Problems {
			a.Problems = append(a.Problems, "sale "+s.SaleID+": "+p)
		}
	}
	a.OK = len(a.Problems) == 0
	return a
}

// String formats the audit for people.
func (a Audit) String() string {
	var b strings.Builder
	if a.OK {
		rel := "≤"
		if a.Exact {
			rel = "="
		}
		fmt.Fprintf(&b, "audit:       ok, nothing oversold%s: initial %d = remaining %d + held %d + confirmed %d over %d stores; %d holds answered %s %d held + confirmed\n",
			a.over(), a.Initial, a.Remaining, a.Held, a.Confirmed, a.Stores, a.Holds, rel, a.Held+a.Confirmed)
		return b.String()
	}
	fmt.Fprintf(&b, "audit:       FAILED%s: initial %d, remaining %d, held %d, confirmed %d over %d stores; %d holds answered\n",
		a.over(), a.Initial, a.Remaining, a.Held, a.Confirmed, a.Stores, a.Holds)
	for _, p := range a.Problems {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	return b.String()
}

// over names the sales an audit of several sums.
func (a Audit) over() string {
	if a.Sales > 1 {
		return fmt.Sprintf(" (%d sales summed, each checked on its own)", a.Sales)
	}
	return ""
}
