package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
)

// The demo city: stores are scattered around Berlin's centre.
const (
	demoLat, demoLon = 52.5200, 13.4050
	demoStores       = 30
	demoRadiusKm     = 12.0
)

var demoDistricts = []string{
	"Mitte", "Kreuzberg", "Neukölln", "Friedrichshain", "Prenzlauer Berg", "Charlottenburg",
	"Schöneberg", "Wedding", "Moabit", "Pankow", "Tempelhof", "Lichtenberg", "Steglitz",
	"Spandau", "Treptow", "Köpenick", "Reinickendorf", "Zehlendorf", "Wilmersdorf", "Marzahn",
}

// demoSale is what seedDemo created.
type demoSale struct {
	sale   engine.Sale
	stores []engine.Store
}

// seedDemo upserts the demo stores (the same every time) and creates a new
// demo sale of a few hundred units, spread unevenly over them, that starts
// after delay and lasts two hours.
func seedDemo(ctx context.Context, eng *engine.Engine, now time.Time, delay time.Duration) (*demoSale, error) {
	rng := rand.New(rand.NewPCG(7, 11))
	stores := make([]engine.Store, demoStores)
	alloc := make(map[string]int, demoStores)
	for i := range stores {
		// Uniform over a disc: radius ~ sqrt(u).
		r := demoRadiusKm * math.Sqrt(rng.Float64())
		a := rng.Float64() * 2 * math.Pi
		lat := demoLat + (r*math.Cos(a))/111.32
		lon := demoLon + (r*math.Sin(a))/(111.32*math.Cos(demoLat*math.Pi/180))
		id := fmt.Sprintf("berlin-%02d", i+1)
		stores[i] = engine.Store{
			ID:   id,
			Name: fmt.Sprintf("Flashsale %s %d", demoDistricts[i%len(demoDistricts)], i/len(demoDistricts)+1),
			Lat:  math.Round(lat*1e5) / 1e5,
			Lon:  math.Round(lon*1e5) / 1e5,
		}
		alloc[id] = 2 + rng.IntN(19) // 2..20 units, ~330 in all
	}
	if err := eng.UpsertStores(ctx, stores); err != nil {
		return nil, err
	}
	start := now.Add(delay).Truncate(time.Second)
	sale, err := eng.CreateSale(ctx, engine.Sale{
		ID:             "demo-" + now.UTC().Format("20060102-150405"),
		SKU:            "SNEAKER-42",
		Name:           "Limited sneaker drop",
		StartsAt:       start,
		EndsAt:         start.Add(2 * time.Hour),
		PerUserLimit:   2,
		HoldTTLSeconds: 600,
		MaxDistanceKm:  15,
		Allocations:    alloc,
	})
	if err != nil {
		return nil, err
	}
	return &demoSale{sale: sale, stores: stores}, nil
}

// print writes the admin token and ready-to-paste commands for the demo.
func (d *demoSale) print(w io.Writer, base, adminToken string) {
	s := d.sale
	st := d.stores[0]
	var b strings.Builder
	fmt.Fprintf(&b, "\n== flashsale demo ==\n")
	fmt.Fprintf(&b, "Shop page:   %s/\nStore page:  %s/store\n", base, base)
	fmt.Fprintf(&b, "Sale %q: %d units over %d stores, starts %s (in %s), ends %s\n",
		s.ID, s.Total(), len(s.Stores), s.StartsAt.Local().Format(time.TimeOnly),
		time.Until(s.StartsAt).Round(time.Second), s.EndsAt.Local().Format(time.TimeOnly))
	fmt.Fprintf(&b, "Admin token: %s\n", adminToken)
	fmt.Fprintf(&b, "Store token of %s: %s\n\n", st.ID, api.StoreToken(adminToken, st.ID))
	fmt.Fprintf(&b, "export FS=%s TOKEN=%s SALE=%s\n", base, adminToken, s.ID)
	fmt.Fprintf(&b, "curl -s $FS/v1/sales/$SALE\n")
	fmt.Fprintf(&b, "curl -s \"$FS/v1/sales/$SALE/stores?lat=%.4f&lon=%.4f\"\n", demoLat, demoLon)
	fmt.Fprintf(&b, "curl -s -XPOST $FS/v1/sales/$SALE/reservations -H 'Idempotency-Key: k1' -d '{\"user_id\":\"alice\",\"lat\":%.4f,\"lon\":%.4f}'\n", demoLat, demoLon)
	fmt.Fprintf(&b, "curl -s -XPOST $FS/v1/holds/<hold_id>/cancel -d '{\"user_id\":\"alice\"}'\n")
	fmt.Fprintf(&b, "curl -s -XPOST $FS/v1/holds/<hold_id>/confirm -H \"Authorization: Bearer $TOKEN\"\n")
	fmt.Fprintf(&b, "curl -s $FS/v1/stores/%s/orders -H 'Authorization: Bearer %s'\n", st.ID, api.StoreToken(adminToken, st.ID))
	fmt.Fprintf(&b, "curl -sN $FS/v1/stores/%s/events -H 'Authorization: Bearer %s'   # live order stream (SSE)\n", st.ID, api.StoreToken(adminToken, st.ID))
	fmt.Fprintf(&b, "curl -s $FS/v1/sales/$SALE/stock -H \"Authorization: Bearer $TOKEN\"\n")
	fmt.Fprintf(&b, "curl -s $FS/metrics | grep ^flashsale_\n\n")
	io.WriteString(w, b.String())
}
