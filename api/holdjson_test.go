package api

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
)

func TestAppendHoldMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 10, 0, 0, 123_000_000, time.UTC)
	base := engine.Hold{ID: "s1.abc", SaleID: "s1", StoreID: "berlin-07", UserID: "alice@example.com", Quantity: 1,
		DistanceKm: 0.84, State: engine.HoldHeld, CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute), UpdatedAt: at}
	tests := []struct {
		name string
		edit func(*holdView)
	}{
		{"plain", func(*holdView) {}},
		{"store name", func(v *holdView) { v.StoreName = "Berlin Mitte" }},
		{"name to escape", func(v *holdView) { v.StoreName = "A \"B\" <&> \\ \n ü 日本 \u2028" }},
		{"invalid utf-8", func(v *holdView) { v.StoreName = "a\xffb" }},
		{"zero distance", func(v *holdView) { v.DistanceKm = 0 }},
		{"tiny distance", func(v *holdView) { v.DistanceKm = 1e-9 }},
		{"whole distance", func(v *holdView) { v.DistanceKm = 12 }},
		{"far", func(v *holdView) { v.DistanceKm = 19999.999 }},
		{"huge", func(v *holdView) { v.DistanceKm = math.MaxFloat64 }},
		{"zero times", func(v *holdView) { v.CreatedAt, v.ExpiresAt, v.UpdatedAt = time.Time{}, time.Time{}, time.Time{} }},
		{"other zone", func(v *holdView) { v.CreatedAt = at.In(time.FixedZone("x", 5*3600+1800)) }},
		{"updated later", func(v *holdView) { v.UpdatedAt = at.Add(1500 * time.Millisecond) }},
		{"updated same instant, other zone", func(v *holdView) { v.UpdatedAt = at.In(time.FixedZone("y", -3600)) }},
		{"whole seconds", func(v *holdView) { v.CreatedAt, v.UpdatedAt = at.Truncate(time.Second), at.Truncate(time.Second) }},
		{"local zone", func(v *holdView) { v.ExpiresAt = at.Local() }},
		{"big quantity", func(v *holdView) { v.Quantity = 1 << 40; v.State = engine.HoldConfirmed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := holdView{Hold: base}
			tt.edit(&v)
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendHold(nil, v); string(got) != string(want) {
				t.Fatalf("appendHold:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestAppendTimeMatchesEncodingJSON holds the UTC fast path to what
// json.Marshal writes, over random instants of every precision and the
// years at the edges.
func TestAppendTimeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 2, 3, 4, 5, 6, 100, time.UTC), time.Date(2026, 11, 30, 9, 8, 7, 120_000_000, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for range 20000 {
		ns := rng.Int64N(int64(9999 * 365.25 * 24 * float64(time.Hour) / 1e9))
		tm := time.Unix(ns-62135596800, 0).UTC() // years 1 to 9999
		switch rng.IntN(4) {
		case 0: // whole seconds
		case 1:
			tm = tm.Add(time.Duration(rng.Int64N(1000)) * time.Millisecond)
		case 2:
			tm = tm.Add(time.Duration(rng.Int64N(1e6)) * time.Microsecond)
		default:
			tm = tm.Add(time.Duration(rng.Int64N(1e9)))
		}
		times = append(times, tm)
	}
	for _, tm := range times {
		want, err := json.Marshal(tm)
		if err != nil {
			continue // outside what encoding/json writes: appendTime is never asked
		}
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestAppendFloatMatchesEncodingJSON holds distances written as metres'
// thousandths, and every other float, to encoding/json.
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	vals := []float64{0, math.Copysign(0, -1), 1, 0.001, 0.01, 0.1, 0.5, 1.5, 2.25, 10, 100.1, 999999.999, 1e6, 1e9, 1e21, 1e-7,
		-1.5, math.Nextafter(0.001, 1), math.Nextafter(1.5, 0), 20037.508}
	for range 100000 {
		vals = append(vals, float64(rng.IntN(40_000_000))/1000, rng.Float64()*100, float64(rng.IntN(1000))/1000)
	}
	for _, f := range vals {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Fatalf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
