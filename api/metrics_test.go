package api

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRequestSeries counts requests from many goroutines at once through
// the remembered series: every count lands in the registered vector under
// its labels, and each set of labels makes its child once.
func TestRequestSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	made := map[requestLabels]int{}
	var mu sync.Mutex
	mk := m.requestSeries.make
	m.requestSeries.make = func(l requestLabels) prometheus.Observer {
		mu.Lock()
		made[l]++
		mu.Unlock()
		return mk(l)
	}
	routes := []string{"reserve", "getHold", "unknown"}
	codes := []int{0, 201, 200, 404, 503, 600}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 600 {
				m.observeRequest(routes[(g+i)%len(routes)], codes[i%len(codes)], time.Millisecond)
				m.countReservation([]string{"created", "sold_out"}[i%2])
			}
		})
	}
	wg.Wait()
	for l, n := range made {
		if n != 1 {
			t.Errorf("series %v made %d times", l, n)
		}
	}
	counts := map[string]uint64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "flashsale_reservations_total" {
			for _, s := range f.GetMetric() {
				counts[s.GetLabel()[0].GetValue()] = uint64(s.GetCounter().GetValue())
			}
		}
		if f.GetName() != "flashsale_http_request_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			var route, class string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "status":
					class = l.GetValue()
				}
			}
			counts[route+" "+class] += s.GetHistogram().GetSampleCount()
		}
	}
	// Codes 0 and 600 fall in the first and last classes.
	classes := map[int]string{0: "1xx", 201: "2xx", 200: "2xx", 404: "4xx", 503: "5xx", 600: "5xx"}
	wantCounts := map[string]uint64{"created": 2400, "sold_out": 2400}
	for g := range 8 {
		for i := range 600 {
			wantCounts[routes[(g+i)%len(routes)]+" "+classes[codes[i%len(codes)]]]++
		}
	}
	if len(counts) != len(wantCounts) {
		t.Errorf("request series %v, want %v", counts, wantCounts)
	}
	for k, n := range wantCounts {
		if counts[k] != n {
			t.Errorf("requests %s: %d, want %d", k, counts[k], n)
		}
	}
}
