package api_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/internal/testenv"
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
			h := newHarnessMode(b, mode == "coalesced")
			path := "/v1/sales/" + bigSale(h) + "/reservations"
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
					h.h(&ctx)
					if ctx.Response.StatusCode() != fasthttp.StatusCreated {
						b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
					}
				}
			})
		})
	}
}

// bigSale creates, through the API, 20 stores around Berlin and a live sale
// of 10 million units in each, and returns the sale's id.
func bigSale(h *harness) string {
	h.t.Helper()
	var stores, alloc []string
	for i := range 20 {
		id := fmt.Sprintf("%s-%d", h.storeA, i)
		stores = append(stores, fmt.Sprintf(`{"id":%q,"name":"Store","lat":%g,"lon":%g}`, id, 52.4+float64(i%5)*0.05, 13.3+float64(i/5)*0.05))
		alloc = append(alloc, fmt.Sprintf("%q:10000000", id))
	}
	h.mustDo("POST", "/v1/stores", admin, "["+strings.Join(stores, ",")+"]", 200)
	id := testenv.ID("bench-sale-")
	h.mustDo("POST", "/v1/sales", admin, fmt.Sprintf(`{"id":%q,"sku":"B","name":"bench","starts_at":%q,"ends_at":%q,
		"per_user_limit":1,"hold_ttl_seconds":600,"max_distance_km":50,"allocations":{%s}}`,
		id, t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339), strings.Join(alloc, ",")), 201)
	return id
}
