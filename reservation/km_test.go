package reservation

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestAppendKmMatchesStrconv holds the integer formatting of distances to
// strconv's, around every kind of value a distance can take and at the
// half metres where rounding is decided.
func TestAppendKmMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	vals := []float64{0, math.Copysign(0, -1), 1, 0.0005, 0.0015, 0.0025, 1.2345, 2.0005, 999.9995, 12.3455,
		math.Nextafter(0.0005, 0), math.Nextafter(0.0005, 1), 20037.508, 1e6, 1e7, math.Inf(1), math.NaN(), -1, -0.0004}
	for range 200000 {
		vals = append(vals, rng.Float64()*20040)
	}
	for range 50000 {
		// Half metres and their neighbours: where d*1000 may round
		// either way.
		h := (float64(rng.IntN(20040000)) + 0.5) / 1000
		vals = append(vals, h, math.Nextafter(h, 0), math.Nextafter(h, math.Inf(1)))
	}
	for range 50000 {
		vals = append(vals, rng.Float64()*0.01, float64(rng.IntN(5000))/1000)
	}
	for _, d := range vals {
		want := strconv.FormatFloat(d, 'f', 3, 64)
		if got := string(appendKm(nil, d)); got != want {
			t.Fatalf("appendKm(%v) = %q, want %q", d, got, want)
		}
		wantV, _ := strconv.ParseFloat(want, 64)
		if got := roundKm(d); got != wantV && !(math.IsNaN(got) && math.IsNaN(wantV)) {
			t.Fatalf("roundKm(%v) = %v, want %v", d, got, wantV)
		}
	}
	// The integer path must be the common one, or it saves nothing.
	fast := 0
	for range 10000 {
		if _, ok := metres(rng.Float64() * 100); ok {
			fast++
		}
	}
	if fast < 9990 {
		t.Fatalf("integer path taken for %d of 10000 random distances", fast)
	}
}
