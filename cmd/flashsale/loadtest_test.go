package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/flashsale/flashsale/internal/testenv"
)

// TestLoadtestEndToEnd runs `flashsale all` and attacks it with `flashsale
// loadtest`, as an SRE would, with two sales at once: both sell out, the
// audits pass, the results file is vegeta's.
func TestLoadtestEndToEnd(t *testing.T) {
	token := "loadtest-admin-token-0123456789"
	ns := testenv.ID("lt-")
	base, _ := runMain(t, nil, "all", "-admin-token", token, "-namespace", ns)
	results := filepath.Join(t.TempDir(), "results.bin")

	var out bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &out, &out
	err := m.ParseFlags([]string{"loadtest", "-target", base, "-admin-token", token, "-stores", "5", "-sales", "2", "-quantity", "30",
		"-rate", "150", "-duration", "1s", "-results", results})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Run(context.Background())
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out.String())
	}
	for _, want := range []string{"audit:       ok, nothing oversold (2 sales summed", "created                60", "by sale:", "sold out:    after", "0 retry mismatches", "results:     " + results} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	f, err := os.Open(results)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r vegeta.Result
	if err := vegeta.NewDecoder(f).Decode(&r); err != nil || r.Attack != "flashsale" {
		t.Fatalf("results file: %v %+v", err, r)
	}
}

func TestLoadtestRejectsBadFlags(t *testing.T) {
	t.Setenv("FLASHSALE_ADMIN_TOKEN", "loadtest-admin-token-0123456789")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "-5"}, "rate"},
		{[]string{"-retry-share", "2"}, "retry share"},
		{[]string{"-target", "localhost:8080"}, "target"},
		{[]string{"-center", "north"}, "lat,lon"},
		{[]string{"-ramp-start", "100", "-ramp-max", "50"}, "ramp"},
		{[]string{"-ramp-start", "100", "-rate", "200"}, "fixed-rate"},
		{[]string{"-ramp-max", "900"}, "need -ramp-start"},
		{[]string{"-ramp-start", "100", "-targets-out", "t.json"}, "does not take a ramp"},
		{[]string{"-sale", "no/such"}, "sale id"},
		{[]string{"-sale", "a,b", "-sales", "2"}, "comma-separated"},
		{[]string{"-sales", "0"}, "sales must be"},
		{[]string{"-nope"}, "not defined"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			m := NewMain()
			m.Stdout, m.Stderr = io.Discard, io.Discard
			err := m.ParseFlags(append([]string{"loadtest"}, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseFlags = %v, want an error about %q", err, tc.want)
			}
		})
	}
	t.Run("defaults and environment", func(t *testing.T) {
		t.Setenv("FLASHSALE_LOADTEST_STORES", "7")
		t.Setenv("FLASHSALE_LOADTEST_QUANTITY", "20")
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		if err := m.ParseFlags([]string{"loadtest", "-quantity", "30"}); err != nil {
			t.Fatal(err)
		}
		if c := m.lt.cfg; c.AdminToken == "" || c.Stores != 7 || c.Quantity != 30 || c.Rate != 500 || c.Ramp != nil {
			t.Fatalf("config %+v", c)
		}
	})
	t.Run("bad environment", func(t *testing.T) {
		t.Setenv("FLASHSALE_LOADTEST_RATE", "many")
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		if err := m.ParseFlags([]string{"loadtest"}); err == nil || !strings.Contains(err.Error(), "$FLASHSALE_LOADTEST_RATE") {
			t.Fatalf("ParseFlags = %v", err)
		}
	})
	t.Run("no admin token", func(t *testing.T) {
		t.Setenv("FLASHSALE_ADMIN_TOKEN", "")
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		if err := m.ParseFlags([]string{"loadtest"}); err == nil || !strings.Contains(err.Error(), "admin token") {
			t.Fatalf("ParseFlags = %v", err)
		}
	})
}
