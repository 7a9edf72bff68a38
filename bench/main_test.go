package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

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
		"(c) PostgreSQL row lock", "(d) HTTP no-op", "(d) HTTP POST",
		"(b) hot sale / (a) raw Redis", "(b) hot sale / (c) PostgreSQL row lock", "(d) reserve endpoint / (d) no-op handler",
		"p99 at 80% of peak",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "first error") {
		t.Errorf("a scenario failed:\n%s", report)
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
