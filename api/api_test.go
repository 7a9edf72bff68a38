package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

const admin = "test-admin-token-0123456789"

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type harness struct {
	t       testing.TB
	h       fasthttp.RequestHandler
	clock   *testenv.Clock
	ledger  *reservation.Ledger
	saleID  string
	storeA  string
	storeB  string
	counter int
}

func newHarness(t testing.TB) *harness { return newHarnessMode(t, true) }

// newHarnessMode is newHarness with the engine's coalescing on or off.
func newHarnessMode(t testing.TB, coalesce bool) *harness {
	t.Helper()
	_, ledger := testenv.Ledger(t, "test-ns-")
	clock := testenv.NewClock(t0)
	cfg := engine.Config{Ledger: ledger, Clock: clock}
	if coalesce {
		cfg.Coalesce = &engine.CoalesceConfig{}
	}
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The server's own metrics registry, which its /metrics serves.
	srv, err := api.New(api.Config{Engine: eng, AdminToken: admin})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, h: srv.Handler(), clock: clock, ledger: ledger,
		saleID: testenv.ID("sale-"), storeA: testenv.ID("a"), storeB: testenv.ID("b")}
	h.mustDo("POST", "/v1/stores", admin, fmt.Sprintf(`[{"id":%q,"name":"A","lat":52.5,"lon":13.4},{"id":%q,"name":"B","lat":52.5,"lon":13.45}]`, h.storeA, h.storeB), 200)
	h.mustDo("POST", "/v1/sales", admin, fmt.Sprintf(`{"id":%q,"sku":"SKU1","name":"Test","starts_at":%q,"ends_at":%q,
		"per_user_limit":2,"hold_ttl_seconds":60,"max_distance_km":10,"allocations":{%q:2,%q:1}}`,
		h.saleID, t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339), h.storeA, h.storeB), 201)
	return h
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (r response) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (h *harness) do(method, path, token, body string, headers ...string) response {
	h.t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	if token != "" {
		ctx.Request.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	ctx.Request.SetBodyString(body)
	h.h(&ctx)
	r := response{status: ctx.Response.StatusCode(), raw: string(ctx.Response.Body())}
	if strings.HasPrefix(string(ctx.Response.Header.ContentType()), "application/json") {
		if err := json.Unmarshal(ctx.Response.Body(), &r.body); err != nil {
			h.t.Fatalf("%s %s: response is not a JSON object: %v: %s", method, path, err, r.raw)
		}
	}
	return r
}

func (h *harness) mustDo(method, path, token, body string, status int, headers ...string) response {
	h.t.Helper()
	r := h.do(method, path, token, body, headers...)
	if r.status != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

// snapshot is everything a bad request must leave unchanged.
func (h *harness) snapshot() string {
	h.t.Helper()
	st, err := h.ledger.Stock(context.Background(), h.saleID)
	if err != nil {
		h.t.Fatal(err)
	}
	holds, err := h.ledger.Holds(context.Background(), h.saleID)
	if err != nil {
		h.t.Fatal(err)
	}
	stores, err := h.ledger.Stores(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	sales, err := h.ledger.SaleIDs(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal([]any{st, len(holds), len(stores), len(sales)})
	return string(b)
}

func (h *harness) reserve(user, key string) response {
	h.t.Helper()
	h.counter++
	return h.do("POST", "/v1/sales/"+h.saleID+"/reservations", "", fmt.Sprintf(`{"user_id":%q,"lat":52.5,"lon":13.401}`, user), "Idempotency-Key", key)
}

func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	// One live hold so that hold endpoints have something to refuse.
	held := h.mustDo("POST", "/v1/sales/"+h.saleID+"/reservations", "", `{"user_id":"owner","lat":52.5,"lon":13.4}`, 201)
	holdID := held.body["hold_id"].(string)
	tokA := api.StoreToken(admin, h.storeA)
	tokB := api.StoreToken(admin, h.storeB)
	res := "/v1/sales/" + h.saleID + "/reservations"
	saleBody := func(mut string) string {
		return fmt.Sprintf(`{"id":"new-%s","name":"N","starts_at":"2026-11-22T12:00:00Z","ends_at":"2026-11-22T13:00:00Z","allocations":{%q:1}%s}`,
			h.saleID, h.storeA, mut)
	}
	cases := []struct {
		name, method, path, token, body string
		headers                         []string
		status                          int
		code                            string
	}{
		{"reserve malformed json", "POST", res, "", `{"user_id":`, nil, 400, "invalid_request"},
		{"reserve empty body", "POST", res, "", ``, nil, 400, "invalid_request"},
		{"reserve not an object", "POST", res, "", `[1,2]`, nil, 400, "invalid_request"},
		{"reserve trailing data", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4} {}`, nil, 400, "invalid_request"},
		{"reserve unknown field", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4,"price":0}`, nil, 400, "invalid_request"},
		{"reserve missing user", "POST", res, "", `{"lat":52.5,"lon":13.4}`, nil, 400, "invalid_request"},
		{"reserve bad user id", "POST", res, "", `{"user_id":"a b","lat":52.5,"lon":13.4}`, nil, 400, "invalid_request"},
		{"reserve no location or store", "POST", res, "", `{"user_id":"x"}`, nil, 400, "invalid_request"},
		{"reserve lat without lon", "POST", res, "", `{"user_id":"x","lat":52.5}`, nil, 400, "invalid_request"},
		{"reserve lat out of range", "POST", res, "", `{"user_id":"x","lat":90.5,"lon":13.4}`, nil, 400, "invalid_request"},
		{"reserve lon out of range", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":-180.1}`, nil, 400, "invalid_request"},
		{"reserve lat as string", "POST", res, "", `{"user_id":"x","lat":"52.5","lon":13.4}`, nil, 400, "invalid_request"},
		{"reserve zero quantity", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4,"quantity":0}`, nil, 400, "invalid_request"},
		{"reserve negative quantity", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4,"quantity":-1}`, nil, 400, "invalid_request"},
		{"reserve huge quantity", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4,"quantity":1000}`, nil, 400, "invalid_request"},
		{"reserve fractional quantity", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4,"quantity":1.5}`, nil, 400, "invalid_request"},
		{"reserve long idempotency key", "POST", res, "", `{"user_id":"x","lat":52.5,"lon":13.4}`, []string{"Idempotency-Key", strings.Repeat("k", 129)}, 400, "invalid_request"},
		{"reserve unknown sale", "POST", "/v1/sales/no-such-sale/reservations", "", `{"user_id":"x","lat":52.5,"lon":13.4}`, nil, 404, "unknown_sale"},
		{"reserve unknown store", "POST", res, "", `{"user_id":"x","store_id":"nowhere"}`, nil, 404, "unknown_store"},
		{"reserve wrong method", "GET", res, "", ``, nil, 405, "method_not_allowed"},
		{"reserve nested sale path", "POST", "/v1/sales/a/b/reservations", "", `{"user_id":"x","lat":52.5,"lon":13.4}`, nil, 404, "not_found"},
		{"unknown route", "GET", "/v1/nothing/here", "", ``, nil, 404, "not_found"},
		{"sale unknown", "GET", "/v1/sales/no-such-sale", "", ``, nil, 404, "unknown_sale"},
		{"sale stores without lat", "GET", "/v1/sales/" + h.saleID + "/stores?lon=13.4", "", ``, nil, 400, "invalid_request"},
		{"sale stores bad lon", "GET", "/v1/sales/" + h.saleID + "/stores?lat=52&lon=abc", "", ``, nil, 400, "invalid_request"},
		{"sale stores lat out of range", "GET", "/v1/sales/" + h.saleID + "/stores?lat=-91&lon=1", "", ``, nil, 400, "invalid_request"},
		{"create sale without token", "POST", "/v1/sales", "", saleBody(""), nil, 401, "unauthorized"},
		{"create sale with store token", "POST", "/v1/sales", tokA, saleBody(""), nil, 401, "unauthorized"},
		{"create sale wrong token", "POST", "/v1/sales", "not-the-admin-token", saleBody(""), nil, 401, "unauthorized"},
		{"create sale duplicate", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), "new-", "", 1), nil, 409, "sale_exists"},
		{"create sale ends before start", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), "13:00", "11:00", 1), nil, 400, "invalid_request"},
		{"create sale bad time", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), "2026-11-22T13:00:00Z", "tomorrow", 1), nil, 400, "invalid_request"},
		{"create sale unknown store", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), h.storeA, "ghost", 1), nil, 400, "invalid_request"},
		{"create sale negative allocation", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), ":1}", ":-1}", 1), nil, 400, "invalid_request"},
		{"create sale quantity over allocations", "POST", "/v1/sales", admin, saleBody(`,"quantity":5`), nil, 400, "invalid_request"},
		{"create sale negative ttl", "POST", "/v1/sales", admin, saleBody(`,"hold_ttl_seconds":-5`), nil, 400, "invalid_request"},
		{"create sale bad id", "POST", "/v1/sales", admin, strings.Replace(saleBody(""), `"new-`, `"bad id `, 1), nil, 400, "invalid_request"},
		{"create sale no allocations", "POST", "/v1/sales", admin, `{"id":"x1","name":"N","starts_at":"2026-11-22T12:00:00Z","ends_at":"2026-11-22T13:00:00Z"}`, nil, 400, "invalid_request"},
		{"stores without token", "POST", "/v1/stores", "", `[{"id":"z","name":"Z","lat":1,"lon":1}]`, nil, 401, "unauthorized"},
		{"stores bad coordinates", "POST", "/v1/stores", admin, `[{"id":"z1","name":"Z","lat":1,"lon":1},{"id":"z2","name":"Z","lat":100,"lon":1}]`, nil, 400, "invalid_request"},
		{"stores missing name", "POST", "/v1/stores", admin, `[{"id":"z1","lat":1,"lon":1}]`, nil, 400, "invalid_request"},
		{"stores empty list", "POST", "/v1/stores", admin, `[]`, nil, 400, "invalid_request"},
		{"confirm without token", "POST", "/v1/holds/" + holdID + "/confirm", "", ``, nil, 401, "unauthorized"},
		{"confirm by the wrong store", "POST", "/v1/holds/" + holdID + "/confirm", tokB, ``, nil, 403, "forbidden"},
		{"confirm unknown hold", "POST", "/v1/holds/" + h.saleID + ".nope/confirm", admin, ``, nil, 404, "unknown_hold"},
		{"confirm malformed hold", "POST", "/v1/holds/nodot/confirm", admin, ``, nil, 404, "unknown_hold"},
		{"cancel without user", "POST", "/v1/holds/" + holdID + "/cancel", "", ``, nil, 400, "invalid_request"},
		{"cancel by another user", "POST", "/v1/holds/" + holdID + "/cancel", "", `{"user_id":"mallory"}`, nil, 403, "forbidden"},
		{"cancel by the wrong store", "POST", "/v1/holds/" + holdID + "/cancel", tokB, ``, nil, 403, "forbidden"},
		{"orders of another store", "GET", "/v1/stores/" + h.storeB + "/orders", tokA, ``, nil, 403, "forbidden"},
		{"orders without token", "GET", "/v1/stores/" + h.storeB + "/orders", "", ``, nil, 401, "unauthorized"},
		{"stock without token", "GET", "/v1/sales/" + h.saleID + "/stock", "", ``, nil, 401, "unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.snapshot()
			r := h.do(c.method, c.path, c.token, c.body, c.headers...)
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.code(), c.status, c.code, r.raw)
			}
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Fatalf("error without a message: %s", r.raw)
			}
			if after := h.snapshot(); after != before {
				t.Fatalf("a refused request changed state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestReserveOutcomes(t *testing.T) {
	h := newHarness(t)
	path := "/v1/sales/" + h.saleID + "/reservations"

	h.clock.Set(t0.Add(-time.Second))
	if r := h.reserve("early", "k"); r.status != 425 || r.code() != "not_started" {
		t.Fatalf("before start: %d %s", r.status, r.raw)
	}
	h.clock.Set(t0)
	first := h.reserve("alice", "k1")
	if first.status != 201 {
		t.Fatalf("reserve: %d %s", first.status, first.raw)
	}
	for _, f := range []string{"hold_id", "sale_id", "store_id", "store_name", "distance_km", "quantity", "expires_at"} {
		if _, ok := first.body[f]; !ok {
			t.Fatalf("reserve response lacks %q: %s", f, first.raw)
		}
	}
	if first.body["store_id"] != h.storeA || first.body["store_name"] != "A" {
		t.Fatalf("nearest store: %s", first.raw)
	}
	replay := h.reserve("alice", "k1")
	if replay.status != 200 || replay.body["hold_id"] != first.body["hold_id"] {
		t.Fatalf("replay: %d %s, want 200 and hold %v", replay.status, replay.raw, first.body["hold_id"])
	}
	if r := h.reserve("alice", "k2"); r.status != 201 || r.body["store_id"] != h.storeA {
		t.Fatalf("second unit: %d %s", r.status, r.raw)
	}
	if r := h.reserve("alice", "k3"); r.status != 409 || r.code() != "limit_reached" {
		t.Fatalf("over the limit: %d %s", r.status, r.raw)
	}
	bob := h.reserve("bob", "k1")
	if bob.status != 201 || bob.body["store_id"] != h.storeB {
		t.Fatalf("fallback to the next store: %d %s", bob.status, bob.raw)
	}
	bobHold := bob.body["hold_id"].(string)
	if r := h.reserve("carol", "k1"); r.status != 409 || r.code() != "sold_out" {
		t.Fatalf("sold out: %d %s", r.status, r.raw)
	}
	if r := h.do("POST", path, "", `{"user_id":"dave","lat":52.5,"lon":14.5}`); r.status != 409 || r.code() != "sold_out" {
		t.Fatalf("far away while sold out: %d %s", r.status, r.raw)
	}
	// Cancel one: a shopper far away gets no_store_stock, one nearby gets it.
	holdID := first.body["hold_id"].(string)
	if r := h.mustDo("POST", "/v1/holds/"+holdID+"/cancel", "", `{"user_id":"alice"}`, 200); r.body["state"] != "cancelled" {
		t.Fatalf("cancel: %s", r.raw)
	}
	if r := h.do("POST", path, "", `{"user_id":"dave","lat":52.5,"lon":14.5}`); r.status != 409 || r.code() != "no_store_stock" {
		t.Fatalf("far away: %d %s", r.status, r.raw)
	}
	sale := h.mustDo("GET", "/v1/sales/"+h.saleID, "", "", 200)
	if sale.body["remaining"] != 1.0 || sale.body["state"] != "live" || sale.body["sku"] != "SKU1" {
		t.Fatalf("sale view: %s", sale.raw)
	}
	near := h.mustDo("GET", "/v1/sales/"+h.saleID+"/stores?lat=52.5&lon=13.44", "", "", 200)
	stores := near.body["stores"].([]any)
	if len(stores) != 2 || stores[0].(map[string]any)["store_id"] != h.storeB || stores[1].(map[string]any)["remaining"] != 1.0 {
		t.Fatalf("nearby stores: %s", near.raw)
	}
	// The store confirms bob's pickup. (Its orders list reads PostgreSQL;
	// the end-to-end tests of cmd/flashsale cover it.)
	if r := h.do("GET", "/v1/stores/"+h.storeB+"/orders", api.StoreToken(admin, h.storeB), ""); r.status != 503 || r.code() != "unavailable" {
		t.Fatalf("orders without an order store: %d %s", r.status, r.raw)
	}
	if r := h.mustDo("POST", "/v1/holds/"+bobHold+"/confirm", api.StoreToken(admin, h.storeB), "", 200); r.body["state"] != "confirmed" {
		t.Fatalf("confirm: %s", r.raw)
	}
	if r := h.do("POST", "/v1/holds/"+bobHold+"/cancel", "", `{"user_id":"bob"}`); r.status != 409 || r.code() != "hold_confirmed" {
		t.Fatalf("cancel confirmed: %d %s", r.status, r.raw)
	}
	h.clock.Set(t0.Add(time.Hour))
	if r := h.reserve("erin", "k1"); r.status != 410 || r.code() != "ended" {
		t.Fatalf("after end: %d %s", r.status, r.raw)
	}
	if r := h.mustDo("GET", "/v1/sales/"+h.saleID, "", "", 200); r.body["state"] != "ended" {
		t.Fatalf("state after end: %s", r.raw)
	}
	metrics := h.mustDo("GET", "/metrics", "", "", 200)
	for _, want := range []string{
		`flashsale_reservations_total{outcome="created"} 3`,
		`flashsale_reservations_total{outcome="replayed"} 1`,
		`flashsale_reservations_total{outcome="sold_out"} 2`,
		`flashsale_http_request_duration_seconds_count{route="reserve",status="4xx"}`,
	} {
		if !strings.Contains(metrics.raw, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	h.mustDo("GET", "/healthz", "", "", 200)
	h.mustDo("GET", "/readyz", "", "", 200)
}
