package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAuditOverHTTP reads stock answers from a fake deployment: a clean
// one passes, tampered ones fail and name each problem.
func TestAuditOverHTTP(t *testing.T) {
	t.Parallel()
	const token = "admin-token-0123456789"
	clean := `{"initial":10,"remaining":3,"held":6,"confirmed":1,"stores":{
		"a":{"store_id":"a","initial":6,"remaining":0,"held":5,"confirmed":1},
		"b":{"store_id":"b","initial":4,"remaining":3,"held":1,"confirmed":0}}}`
	cases := []struct {
		name  string
		stock string
		seen  seen
		want  []string // each must appear in a problem; none: the audit passes
	}{
		{"clean, exact", clean, seen{holds: 7, exact: true}, nil},
		{"clean, existing sale with other shoppers", clean, seen{holds: 5}, nil},
		{"oversold globally", `{"initial":10,"remaining":0,"held":11,"confirmed":0,"stores":{
			"a":{"initial":10,"remaining":0,"held":11,"confirmed":0}}}`, seen{holds: 11, exact: true},
			[]string{"global: initial 10 != remaining 0 + held 11", "store a: initial 10"}},
		{"negative store count", `{"initial":10,"remaining":3,"held":6,"confirmed":1,"stores":{
			"a":{"initial":6,"remaining":-1,"held":6,"confirmed":1},
			"b":{"initial":4,"remaining":4,"held":0,"confirmed":0}}}`, seen{holds: 7, exact: true},
			[]string{"store a: negative count (remaining -1"}},
		{"stores do not add up", `{"initial":10,"remaining":3,"held":6,"confirmed":1,"stores":{
			"a":{"initial":6,"remaining":1,"held":5,"confirmed":0}}}`, seen{holds: 7, exact: true},
			[]string{"stores' held + confirmed sum to 5, the sale's to 7"}},
		{"a hold answered but not counted", clean, seen{holds: 8, exact: true}, []string{"answered 8 distinct holds, but the sale counts 7"}},
		{"a hold counted but never answered", clean, seen{holds: 6, exact: true}, []string{"answered 6 distinct holds, but the sale counts 7"}},
		{"existing sale, more holds than counted", clean, seen{holds: 9}, []string{"more than the 7 held + confirmed"}},
		{"retry answered another hold", clean, seen{holds: 7, mismatches: 2, exact: true}, []string{"2 retries were answered another hold"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "GET" || r.URL.Path != "/v1/sales/s1/stock" || r.Header.Get("Authorization") != "Bearer "+token {
					http.Error(w, `{"error":{"code":"unauthorized","message":"no"}}`, http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tc.stock))
			}))
			defer srv.Close()
			c := &client{base: srv.URL, token: token, http: &http.Client{Timeout: 5 * time.Second}}
			st, err := c.stock(context.Background(), "s1")
			if err != nil {
				t.Fatal(err)
			}
			a := audit(st, tc.seen)
			if a.OK != (len(tc.want) == 0) || len(a.Problems) < len(tc.want) {
				t.Fatalf("audit OK=%v with problems %q, want problems about %q", a.OK, a.Problems, tc.want)
			}
			text := a.String()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("no problem names %q:\n%s", w, text)
				}
			}
			if a.OK && !strings.Contains(text, "audit:       ok") || !a.OK && !strings.Contains(text, "FAILED") {
				t.Errorf("report:\n%s", text)
			}
		})
	}
}

func TestStockErrorsNameTheAPIError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"unauthorized","message":"missing or wrong bearer token"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	c := &client{base: srv.URL, token: "wrong", http: &http.Client{Timeout: 5 * time.Second}}
	_, err := c.stock(context.Background(), "s1")
	if err == nil || !strings.Contains(err.Error(), "unauthorized: missing or wrong bearer token") {
		t.Fatalf("stock error = %v", err)
	}
}
