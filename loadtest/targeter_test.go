package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/flashsale/flashsale/geo"
)

func TestRandomPointStaysWithinRadius(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		centre   Point
		radiusKm float64
	}{
		{"berlin 10km", Berlin, 10},
		{"berlin 0km", Berlin, 0},
		{"antimeridian", Point{Lat: -16.5, Lon: 179.99}, 25},
		{"far north", Point{Lat: 89.9, Lon: 0}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, 2))
			for range 2000 {
				p := randomPoint(rng, tc.centre, tc.radiusKm)
				if !p.valid() {
					t.Fatalf("invalid point %v", p)
				}
				// 0.01 km covers the rounding to 5 decimals.
				if d := geo.Haversine(geo.Point(tc.centre), geo.Point(p)); d > tc.radiusKm+0.01 {
					t.Fatalf("point %v is %.3f km from %v, radius %g", p, d, tc.centre, tc.radiusKm)
				}
			}
		})
	}
}

func TestTargeter(t *testing.T) {
	t.Parallel()
	stores := []Point{Berlin, {Lat: 52.45, Lon: 13.3}, {Lat: 52.6, Lon: 13.5}}
	const n, radius, goroutines = 6000, 2.0, 4
	for _, share := range []float64{0, 0.1, 0.5} {
		t.Run(fmt.Sprint("retry share ", share), func(t *testing.T) {
			t.Parallel()
			g := newTargeter([]saleTarget{{url: "http://x/v1/sales/s/reservations", stores: stores}}, radius, share, "lt-run-", 42)
			var mu sync.Mutex
			var targets []vegeta.Target
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range n / goroutines {
						var tgt vegeta.Target
						if err := g.target(&tgt); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						targets = append(targets, tgt)
						mu.Unlock()
					}
				})
			}
			wg.Wait()

			type first struct {
				key  string
				body []byte
			}
			byUser := map[string]first{}
			keys := map[string]string{}
			for _, tgt := range targets {
				if tgt.Method != "POST" || tgt.URL != "http://x/v1/sales/s/reservations" || tgt.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("target %+v", tgt)
				}
				var b struct {
					UserID string  `json:"user_id"`
					Lat    float64 `json:"lat"`
					Lon    float64 `json:"lon"`
				}
				if err := json.Unmarshal(tgt.Body, &b); err != nil {
					t.Fatalf("body %s: %v", tgt.Body, err)
				}
				key := tgt.Header.Get("Idempotency-Key")
				if f, ok := byUser[b.UserID]; ok {
					// A retry: the exact request of an earlier target.
					if f.key != key || !bytes.Equal(f.body, tgt.Body) {
						t.Fatalf("retry of %s differs: %s %s, first %s %s", b.UserID, key, tgt.Body, f.key, f.body)
					}
					continue
				}
				if u, ok := keys[key]; ok {
					t.Fatalf("key %s used by %s and %s", key, u, b.UserID)
				}
				keys[key] = b.UserID
				byUser[b.UserID] = first{key, tgt.Body}
				near := math.Inf(1)
				for _, s := range stores {
					near = math.Min(near, geo.Haversine(geo.Point(s), geo.Point{Lat: b.Lat, Lon: b.Lon}))
				}
				if near > radius+0.01 {
					t.Fatalf("shopper %s at %v,%v is %.2f km from the nearest store", b.UserID, b.Lat, b.Lon, near)
				}
			}
			retries := len(targets) - len(byUser)
			if retries != g.retried() {
				t.Fatalf("%d targets repeat a shopper, the targeter counted %d retries", retries, g.retried())
			}
			if got := float64(retries) / float64(len(targets)); math.Abs(got-share) > 0.03 {
				t.Fatalf("retry share %.3f, want about %.2f", got, share)
			}
		})
	}
}
