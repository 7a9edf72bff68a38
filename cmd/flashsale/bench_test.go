package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/internal/testenv"
)

// BenchmarkBurstToOrder measures the whole pipeline under a burst: b.N
// shoppers reserve over HTTP (32 at a time) in `flashsale all`, and the
// benchmark reports the delay from each hold's creation to its order row
// in PostgreSQL and to its store's notification, median and p99, and the
// rate at which order rows were written.
//
//	go test -run '^$' -bench BurstToOrder -benchtime 5000x ./cmd/flashsale
func BenchmarkBurstToOrder(b *testing.B) {
	dbURL := testenv.Postgres(b)
	base, _ := runMain(b, nil, "all", "-admin-token", faultAdmin, "-namespace", testenv.ID("bench-"), "-database-url", dbURL)
	saleID := faultSale(b, base, b.N)
	sh := newShoppers(base, saleID)
	b.ResetTimer()
	sh.run(b.N+32, 32, nil)
	created := len(sh.holds())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	testenv.Eventually(b, 2*time.Minute, func() error {
		var orders, notes int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders WHERE sale_id = $1),
			(SELECT count(*) FROM store_events WHERE payload->>'sale_id' = $1)`, saleID).Scan(&orders, &notes); err != nil {
			return err
		}
		if orders < created || notes < created {
			return fmt.Errorf("%d orders, %d notifications of %d holds", orders, notes, created)
		}
		return nil
	})
	b.StopTimer()

	delays := func(q string) []float64 {
		rows, err := conn.Query(ctx, q, saleID)
		if err != nil {
			b.Fatal(err)
		}
		ms, err := pgx.CollectRows(rows, pgx.RowTo[float64])
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(ms)
		return ms
	}
	toOrder := delays(`SELECT extract(epoch FROM written_at - created_at) * 1000 FROM orders WHERE sale_id = $1`)
	toNote := delays(`SELECT extract(epoch FROM e.created_at - (e.payload->'hold'->>'created_at')::timestamptz) * 1000
		FROM store_events e WHERE e.payload->>'sale_id' = $1 AND e.type = 'hold.created'`)
	var span float64
	if err := conn.QueryRow(ctx, `SELECT extract(epoch FROM max(written_at) - min(written_at)) FROM orders WHERE sale_id = $1`, saleID).Scan(&span); err != nil {
		b.Fatal(err)
	}
	pct := func(s []float64, p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	b.ReportMetric(float64(created), "holds")
	b.ReportMetric(float64(created)/max(span, 1e-3), "orders/s")
	b.ReportMetric(pct(toOrder, 0.5), "order-p50-ms")
	b.ReportMetric(pct(toOrder, 0.99), "order-p99-ms")
	b.ReportMetric(pct(toNote, 0.5), "notify-p50-ms")
	b.ReportMetric(pct(toNote, 0.99), "notify-p99-ms")
}
