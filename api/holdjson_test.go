package api

import (
	"encoding/json"
	"math"
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
