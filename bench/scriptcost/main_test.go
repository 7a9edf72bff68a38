package main

import (
	"context"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/internal/testenv"
)

// TestRuns drives a few batches through the real ledger, so that
// make script-cost keeps working; it checks what was done, not a figure.
func TestRuns(t *testing.T) {
	testenv.Redis(t)
	var out strings.Builder
	if err := run(context.Background(), &out, testenv.RedisURL(), 4, 12); err != nil {
		t.Fatal(err)
	}
	if out.String() != "batch 4: 12 holds in 3 script calls\n" {
		t.Fatalf("report %q", out.String())
	}
}
