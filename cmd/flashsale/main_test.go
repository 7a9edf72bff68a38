package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the server and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runMain starts the binary's Main with args on a free port, with a
// PostgreSQL schema of the test's own (unless args name a database) and,
// for commands that need Kafka, an in-process broker. It returns the base
// URL and the output; the process stops when the test ends.
func runMain(t testing.TB, clock *testenv.Clock, args ...string) (string, *syncBuffer) {
	t.Helper()
	testenv.Redis(t) // fail early, with instructions, when Redis is missing
	if !slices.Contains(args, "-database-url") {
		args = append(args, "-database-url", testenv.Postgres(t))
	}
	m := NewMain()
	out := &syncBuffer{}
	m.Stdout, m.Stderr = out, out
	if clock != nil {
		m.Clock = clock
	}
	if !slices.Contains(args, "-redis-url") {
		args = append(args, "-redis-url", testenv.RedisURL())
	}
	args = append(args, "-http-addr", "127.0.0.1:0", "-sweep-interval", "10ms")
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if m.Config.RedisURL == testenv.RedisURL() && m.Config.Namespace != DefaultConfig().Namespace {
		// The test's own namespace on the shared test Redis: its stores
		// and sales go when the test ends (after Main has stopped).
		testenv.CleanupNamespace(t, testenv.Redis(t), m.Config.Namespace)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	addr, err := m.Addr(actx)
	if err != nil {
		select {
		case err := <-done:
			t.Fatalf("Main stopped: %v\n%s", err, out)
		default:
		}
		t.Fatalf("server did not start: %v\n%s", err, out)
	}
	return "http://" + addr, out
}

type client struct {
	t    testing.TB
	base string
}

func (c client) call(method, path, token, body string, headers ...string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, m
}

func (c client) must(method, path, token, body string, status int, headers ...string) map[string]any {
	c.t.Helper()
	got, m := c.call(method, path, token, body, headers...)
	if got != status {
		c.t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, status, m)
	}
	return m
}

// TestServeEndToEnd runs the binary's main on a free port and drives a sale
// over HTTP: stores and a sale created by an operator, shoppers reserving,
// a store confirming, a shopper cancelling, a hold expiring by the sweeper.
func TestServeEndToEnd(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	clock := testenv.NewClock(now)
	token := "e2e-admin-token-0123456789"
	dbURL := testenv.Postgres(t)
	base, _ := runMain(t, clock, "all", "-admin-token", token, "-namespace", testenv.ID("e2e-"), "-database-url", dbURL)
	c := client{t, base}

	a, b := testenv.ID("e2e-a-"), testenv.ID("e2e-b-")
	stores := c.must("POST", "/v1/stores", token, fmt.Sprintf(`[{"id":%q,"name":"Alpha","lat":48.85,"lon":2.35},{"id":%q,"name":"Beta","lat":48.86,"lon":2.36}]`, a, b), 200)
	tokens := stores["stores"].([]any)
	storeTokA := tokens[0].(map[string]any)["token"].(string)
	if storeTokA != api.StoreToken(token, a) {
		t.Fatalf("store token %q", storeTokA)
	}
	saleID := testenv.ID("e2e-sale-")
	c.must("POST", "/v1/sales", token, fmt.Sprintf(`{"id":%q,"sku":"S","name":"E2E","starts_at":%q,"ends_at":%q,"per_user_limit":1,"hold_ttl_seconds":30,"max_distance_km":5,"allocations":{%q:2,%q:1}}`,
		saleID, now.Add(time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), a, b), 201)
	reserve := "/v1/sales/" + saleID + "/reservations"
	if code, m := c.call("POST", reserve, "", `{"user_id":"u1","lat":48.85,"lon":2.35}`); code != 425 {
		t.Fatalf("before the start: %d %v", code, m)
	}
	clock.Advance(time.Minute)
	h1 := c.must("POST", reserve, "", `{"user_id":"u1","lat":48.85,"lon":2.35}`, 201, "Idempotency-Key", "x")
	again := c.must("POST", reserve, "", `{"user_id":"u1","lat":48.85,"lon":2.35}`, 200, "Idempotency-Key", "x")
	if again["hold_id"] != h1["hold_id"] || h1["store_name"] != "Alpha" {
		t.Fatalf("replay %v vs %v", again, h1)
	}
	h2 := c.must("POST", reserve, "", `{"user_id":"u2","lat":48.85,"lon":2.35}`, 201)
	h3 := c.must("POST", reserve, "", `{"user_id":"u3","lat":48.85,"lon":2.35}`, 201)
	if h3["store_id"] != b {
		t.Fatalf("third shopper should fall back to Beta: %v", h3)
	}
	if code, m := c.call("POST", reserve, "", `{"user_id":"u4","lat":48.85,"lon":2.35}`); code != 409 || m["error"].(map[string]any)["code"] != "sold_out" {
		t.Fatalf("sold out: %d %v", code, m)
	}
	// Store A sees the order (written to PostgreSQL through the outbox,
	// Kafka and the orders consumer), packs it, and hands it over.
	id1 := h1["hold_id"].(string)
	waitOrders(t, c, a, storeTokA, map[string]string{id1: "held"})
	if o := c.must("POST", "/v1/stores/"+a+"/orders/"+id1+"/packed", storeTokA, "", 200); o["packed_at"] == nil {
		t.Fatalf("packed: %v", o)
	}
	if h := c.must("POST", "/v1/stores/"+a+"/orders/"+id1+"/picked-up", storeTokA, "", 200); h["state"] != "confirmed" {
		t.Fatalf("picked up: %v", h)
	}
	c.must("POST", "/v1/stores/"+a+"/orders/"+h3["hold_id"].(string)+"/picked-up", storeTokA, "", 403)
	c.must("POST", "/v1/holds/"+h2["hold_id"].(string)+"/cancel", "", `{"user_id":"u2"}`, 200)
	if s := c.must("GET", "/v1/sales/"+saleID, "", "", 200); s["remaining"] != 1.0 || s["state"] != "live" {
		t.Fatalf("after cancel: %v", s)
	}
	// h3 expires: the sweeper runs on the injected clock.
	clock.Advance(31 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := c.must("GET", "/v1/holds/"+h3["hold_id"].(string), "", "", 200)
		if h["state"] == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold not expired by the sweeper: %v", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := c.must("GET", "/v1/sales/"+saleID, "", "", 200); s["remaining"] != 2.0 {
		t.Fatalf("after expiry: %v", s)
	}
	waitOrders(t, c, a, storeTokA, map[string]string{id1: "confirmed", h2["hold_id"].(string): "cancelled"})
	waitOrders(t, c, b, api.StoreToken(token, b), map[string]string{h3["hold_id"].(string): "expired"})
	c.must("GET", "/v1/stores/"+b+"/orders", storeTokA, "", 403)
	c.must("GET", "/v1/stores/"+b+"/events", storeTokA, "", 403)

	// Store A's live stream replays its notifications in order, and resumes
	// after the Last-Event-ID it is given.
	events := readSSE(t, base+"/v1/stores/"+a+"/events", storeTokA, "", 4)
	want := []string{"hold.created " + id1, "hold.created " + h2["hold_id"].(string), "hold.confirmed " + id1, "hold.cancelled " + h2["hold_id"].(string)}
	for i, e := range events {
		if got := e.event + " " + e.holdID; got != want[i] {
			t.Fatalf("event %d: %q, want %q (all: %v)", i, got, want[i], events)
		}
	}
	resumed := readSSE(t, base+"/v1/stores/"+a+"/events", storeTokA, events[1].id, 2)
	if resumed[0].id != events[2].id || resumed[1].id != events[3].id {
		t.Fatalf("resume after %s: %v, want %v", events[1].id, resumed, events[2:])
	}

	// The audit across Redis and PostgreSQL is clean.
	var out bytes.Buffer
	am := NewMain()
	am.Stdout, am.Stderr = &out, &out
	if err := am.ParseFlags([]string{"audit", "-sale", saleID, "-wait", "10s", "-redis-url", testenv.RedisURL(), "-database-url", dbURL}); err != nil {
		t.Fatal(err)
	}
	if err := am.Run(context.Background()); err != nil || !strings.Contains(out.String(), "ok: every invariant holds") {
		t.Fatalf("audit: %v\n%s", err, out.String())
	}
	for _, p := range []string{"/healthz", "/readyz", "/"} {
		c.must("GET", p, "", "", 200)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"flashsale_reservations_total", "flashsale_redis_script_duration_seconds_bucket", "flashsale_holds_expired_total 1"} {
		if !strings.Contains(string(raw), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

// TestDemoSeedsAndPrintsCommands runs `flashsale demo` as make run does.
func TestDemoSeedsAndPrintsCommands(t *testing.T) {
	base, out := runMain(t, nil, "demo", "-namespace", testenv.ID("demo-"), "-demo-start-delay", "0s")
	c := client{t, base}
	text := out.String()
	for _, want := range []string{"Admin token: adm_", "curl -s -XPOST $FS/v1/sales/$SALE/reservations", "export FS=" + base} {
		if !strings.Contains(text, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, text)
		}
	}
	sales := c.must("GET", "/v1/sales", "", "", 200)["sales"].([]any)
	if len(sales) != 1 {
		t.Fatalf("want the one demo sale, got %v", sales)
	}
	s := sales[0].(map[string]any)
	saleID := s["id"].(string)
	if n := len(s["stores"].([]any)); n != demoStores {
		t.Fatalf("demo sale has %d stores", n)
	}
	if r := s["remaining"].(float64); r < 100 || r > 1000 {
		t.Fatalf("demo sale has %v units", r)
	}
	res := c.must("POST", "/v1/sales/"+saleID+"/reservations", "", fmt.Sprintf(`{"user_id":"demo-user","lat":%v,"lon":%v}`, demoLat, demoLon), 201)
	if res["store_name"] == "" {
		t.Fatalf("reservation: %v", res)
	}
}

func TestParseFlagsRejectsBadInput(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"serve", "-sweep-interval", "1ns"},
		{"serve", "-admin-token", "short"},
		{"serve", "extra-arg"},
		{"serve", "-coalesce-inflight", "4", "-coalesce-calls", "3"},
		{"serve", "-coalesce-max-sales", "0"},
		{"serve", "-coalesce-calls", "-1"},
		{"store-token"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			m := NewMain()
			m.Stdout, m.Stderr = io.Discard, io.Discard
			if err := m.ParseFlags(args); err == nil {
				t.Fatalf("ParseFlags(%q) accepted bad input", args)
			}
		})
	}
}

// waitOrders polls a store's orders until each hold in want has an order in
// the wanted state, and fails the test after 15 s.
func waitOrders(t *testing.T, c client, storeID, token string, want map[string]string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		_, m := c.call("GET", "/v1/stores/"+storeID+"/orders", token, "")
		got := map[string]string{}
		for _, o := range m["orders"].([]any) {
			o := o.(map[string]any)
			if o["store_id"] != storeID {
				return fmt.Errorf("store %s was shown an order of %v", storeID, o["store_id"])
			}
			got[o["hold_id"].(string)] = o["state"].(string)
		}
		for id, st := range want {
			if got[id] != st {
				return fmt.Errorf("store %s orders: %v, want %v", storeID, got, want)
			}
		}
		return nil
	})
}

type sseEvent struct{ id, event, holdID string }

// readSSE reads n events of a store stream, starting after lastID when set.
func readSSE(t *testing.T, url, token, lastID string, n int) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			var e struct {
				Hold struct {
					ID string `json:"hold_id"`
				} `json:"hold"`
			}
			if err := json.Unmarshal([]byte(line[6:]), &e); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			cur.holdID = e.Hold.ID
		case line == "" && cur.id != "":
			out = append(out, cur)
			cur = sseEvent{}
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(out), n, sc.Err())
	}
	return out
}

// TestFlagsReadTheirVariables checks that a setting comes from its flag,
// else from its environment variable, else from its default, and that a
// variable that is not a valid value is refused by name.
func TestFlagsReadTheirVariables(t *testing.T) {
	parse := func(args ...string) (*Main, error) {
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		return m, m.ParseFlags(append([]string{"serve"}, args...))
	}
	m, err := parse()
	if err != nil || m.Config.SweepInterval != DefaultConfig().SweepInterval {
		t.Fatalf("default: %v %v", m.Config.SweepInterval, err)
	}
	t.Setenv("FLASHSALE_SWEEP_INTERVAL", "2s")
	t.Setenv("FLASHSALE_COALESCE", "false")
	if m, err = parse(); err != nil || m.Config.SweepInterval != 2*time.Second || m.Config.Coalesce {
		t.Fatalf("from the environment: %v %v %v", m.Config.SweepInterval, m.Config.Coalesce, err)
	}
	if m, err = parse("-sweep-interval", "3s", "-coalesce"); err != nil || m.Config.SweepInterval != 3*time.Second || !m.Config.Coalesce {
		t.Fatalf("flags over the environment: %v %v %v", m.Config.SweepInterval, m.Config.Coalesce, err)
	}
	t.Setenv("FLASHSALE_COALESCE_INFLIGHT", "two")
	if _, err = parse(); err == nil || !strings.Contains(err.Error(), "$FLASHSALE_COALESCE_INFLIGHT") {
		t.Fatalf("bad variable: %v", err)
	}
}
