package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

// BenchmarkReserveHandler drives the reserve endpoint's handler directly
// (no sockets) against the real Redis, to count what one reservation
// costs in the process: allocations and CPU of routing, JSON, the engine,
// the coalescer and the ledger. Every iteration creates a hold; the sale
// never sells out. The side-by-side throughput figures come from
// `make bench`.
func BenchmarkReserveHandler(b *testing.B) {
	for _, mode := range []string{"direct", "coalesced"} {
		b.Run(mode, func(b *testing.B) {
			h, path := reserveHandler(b, mode == "coalesced")
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // many shoppers at once, as in a sale
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				body := make([]byte, 0, 64)
				for pb.Next() {
					i := n.Add(1)
					ctx.Request.Reset()
					ctx.Response.Reset()
					ctx.Request.Header.SetMethod(fasthttp.MethodPost)
					ctx.Request.SetRequestURI(path)
					body = append(body[:0], `{"user_id":"u`...)
					body = strconv.AppendInt(body, i, 10)
					body = append(body, `","lat":52.52,"lon":13.405}`...)
					ctx.Request.SetBodyRaw(body)
					h(&ctx)
					if ctx.Response.StatusCode() != fasthttp.StatusCreated {
						b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
					}
				}
			})
		})
	}
}

func reserveHandler(b *testing.B, coalesce bool) (fasthttp.RequestHandler, string) {
	b.Helper()
	ctx := context.Background()
	rdb := testenv.Redis(b)
	ns := testenv.ID("bench-ns-")
	testenv.CleanupNamespace(b, rdb, ns)
	ledger := reservation.New(rdb, reservation.WithNamespace(ns))
	if err := ledger.Load(ctx); err != nil {
		b.Fatal(err)
	}
	cfg := engine.Config{Ledger: ledger}
	if coalesce {
		cfg.Coalesce = &engine.CoalesceConfig{}
	}
	eng, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	stores := make([]engine.Store, 20)
	alloc := map[string]int{}
	for i := range stores {
		stores[i] = engine.Store{ID: fmt.Sprintf("%s-%d", ns, i), Name: "Store", Lat: 52.4 + float64(i%5)*0.05, Lon: 13.3 + float64(i/5)*0.05}
		alloc[stores[i].ID] = 10_000_000
	}
	if err := eng.UpsertStores(ctx, stores); err != nil {
		b.Fatal(err)
	}
	sale := engine.Sale{ID: testenv.ID("bench-sale-"), Name: "bench", StartsAt: time.Now().Add(-time.Minute),
		EndsAt: time.Now().Add(time.Hour), PerUserLimit: 1, HoldTTLSeconds: 600, MaxDistanceKm: 50, Allocations: alloc}
	testenv.CleanupSale(b, rdb, sale.ID)
	if _, err := eng.CreateSale(ctx, sale); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := api.NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Config{Engine: eng, AdminToken: admin, Metrics: m, Gatherer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return srv.Handler(), "/v1/sales/" + sale.ID + "/reservations"
}
