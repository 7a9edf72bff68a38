package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/localkafka"
	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/persist"
	"github.com/flashsale/flashsale/reservation"
)

const faultAdmin = "fault-admin-token-0123456789"

// faultSale creates three stores and a live sale of units over them.
func faultSale(t testing.TB, base string, units int) string {
	t.Helper()
	c := client{t, base}
	ids := []string{testenv.ID("fa-"), testenv.ID("fb-"), testenv.ID("fc-")}
	c.must("POST", "/v1/stores", faultAdmin, fmt.Sprintf(`[{"id":%q,"name":"A","lat":52.50,"lon":13.40},{"id":%q,"name":"B","lat":52.51,"lon":13.41},{"id":%q,"name":"C","lat":52.52,"lon":13.42}]`,
		ids[0], ids[1], ids[2]), 200)
	saleID := testenv.ID("fault-")
	now := time.Now().UTC()
	c.must("POST", "/v1/sales", faultAdmin, fmt.Sprintf(`{"id":%q,"sku":"S","name":"fault","starts_at":%q,"ends_at":%q,"per_user_limit":1,"hold_ttl_seconds":600,"max_distance_km":50,"allocations":{%q:%d,%q:%d,%q:%d}}`,
		saleID, now.Add(-time.Second).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), ids[0], units/2, ids[1], units/4, ids[2], units-units/2-units/4), 201)
	return saleID
}

// shoppers reserves from the API with concurrent shoppers until stop is
// closed or n requests were made, and returns the holds it was told were
// created. Failed requests (the service may be down) are expected.
type shoppers struct {
	base, saleID string
	next         atomic.Int64
	mu           sync.Mutex
	created      map[string]bool
	statuses     map[int]int
}

func newShoppers(base, saleID string) *shoppers {
	return &shoppers{base: base, saleID: saleID, created: map[string]bool{}, statuses: map[int]int{}}
}

func (s *shoppers) run(n, workers int, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 3 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := s.next.Add(1)
				if i > int64(n) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"user_id":"shopper-%d","lat":52.505,"lon":13.405}`, i)
				resp, err := hc.Post(s.base+"/v1/sales/"+s.saleID+"/reservations", "application/json", strings.NewReader(body))
				if err != nil {
					s.mu.Lock()
					s.statuses[0]++
					s.mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				s.mu.Lock()
				s.statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusCreated {
					var h struct {
						ID string `json:"hold_id"`
					}
					json.Unmarshal(raw, &h)
					s.created[h.ID] = true
				}
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (s *shoppers) holds() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.created))
	for k := range s.created {
		out[k] = true
	}
	return out
}

// checkDurable waits until the sale's audit is clean and every hold the API
// reported as created has exactly one order.
func checkDurable(t *testing.T, redisURL, dbURL, saleID string, created map[string]bool) {
	t.Helper()
	if len(created) == 0 {
		t.Fatal("no reservation succeeded: the test exercised nothing")
	}
	var out strings.Builder
	am := NewMain()
	am.Stdout, am.Stderr = &out, &out
	if err := am.ParseFlags([]string{"audit", "-sale", saleID, "-wait", "90s", "-redis-url", redisURL, "-database-url", dbURL}); err != nil {
		t.Fatal(err)
	}
	if err := am.Run(context.Background()); err != nil {
		t.Fatalf("audit: %v\n%s", err, out.String())
	}
	db, err := persist.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	orders, err := db.SaleOrders(context.Background(), saleID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, o := range orders {
		seen[o.ID]++
	}
	for id := range created {
		if seen[id] != 1 {
			t.Fatalf("hold %s reported created has %d orders", id, seen[id])
		}
	}
	t.Logf("%d holds reported created, %d orders; audit: %s", len(created), len(orders), strings.TrimSpace(out.String()))
}

// TestKafkaOutage cuts the Kafka broker off during a sale: reservations go
// on (they only need Redis), events wait in the outbox, and once Kafka is
// back every one of them reaches PostgreSQL.
func TestKafkaOutage(t *testing.T) {
	proxy := testenv.NewProxy(t, "")
	testenv.KafkaBehindProxy(t, proxy, "")
	dbURL := testenv.Postgres(t)
	base, _ := runMain(t, nil, "all", "-admin-token", faultAdmin, "-namespace", testenv.ID("kfault-"),
		"-kafka-brokers", proxy.Addr(), "-database-url", dbURL)
	saleID := faultSale(t, base, 200)
	sh := newShoppers(base, saleID)
	sh.run(40, 8, nil)

	proxy.Cut()
	sh.run(120, 8, nil)
	rdb := testenv.Redis(t)
	if n, _ := rdb.XLen(context.Background(), reservation.OutboxKey(saleID)).Result(); n == 0 {
		t.Fatal("with Kafka cut off, the outbox should hold the new events")
	}
	time.Sleep(time.Second)
	proxy.Restore()
	sh.run(160, 8, nil)
	checkDurable(t, testenv.RedisURL(), dbURL, saleID, sh.holds())
}

// TestPostgresOutage cuts PostgreSQL off during a sale; the consumers retry
// and nothing is lost or doubled once it is back.
func TestPostgresOutage(t *testing.T) {
	dbURL := testenv.Postgres(t)
	proxy := testenv.NewProxy(t, "127.0.0.1:5432")
	proxied := strings.Replace(dbURL, "127.0.0.1:5432", proxy.Addr(), 1)
	if proxied == dbURL {
		t.Skip("TEST_DATABASE_URL is not on 127.0.0.1:5432; the proxy cannot stand in front of it")
	}
	base, _ := runMain(t, nil, "all", "-admin-token", faultAdmin, "-namespace", testenv.ID("pgfault-"), "-database-url", proxied)
	saleID := faultSale(t, base, 200)
	sh := newShoppers(base, saleID)
	sh.run(40, 8, nil)

	proxy.Cut()
	sh.run(120, 8, nil)
	c := client{t, base}
	if code, _ := c.call("GET", "/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with PostgreSQL cut off: %d, want 503", code)
	}
	time.Sleep(time.Second)
	proxy.Restore()
	sh.run(160, 8, nil)
	checkDurable(t, testenv.RedisURL(), dbURL, saleID, sh.holds())
}

// TestRedisAOFRestart kills a Redis that runs with AOF (appendfsync always)
// in the middle of a sale and starts it again from its files: every hold
// the API reported survives and reaches PostgreSQL once.
func TestRedisAOFRestart(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	start := func() *exec.Cmd {
		cmd := testenv.StartRedis(t, port, dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
		waitPort(t, port)
		return cmd
	}
	redisSrv := start()
	t.Cleanup(func() { redisSrv.Process.Kill(); redisSrv.Wait() })
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", port)

	dbURL := testenv.Postgres(t)
	base, _ := runMain(t, nil, "all", "-admin-token", faultAdmin, "-namespace", "aof", "-redis-url", redisURL, "-database-url", dbURL)
	saleID := faultSale(t, base, 300)
	sh := newShoppers(base, saleID)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { sh.run(400, 8, stop); close(done) }()
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(sh.holds()); n < 30 {
			return fmt.Errorf("only %d holds so far", n)
		}
		return nil
	})
	redisSrv.Process.Signal(syscall.SIGKILL) // a crash, not a clean shutdown
	redisSrv.Wait()
	before := len(sh.holds())
	time.Sleep(1500 * time.Millisecond) // longer than the client's retries

	redisSrv = start()
	<-done
	sh.run(500, 8, nil)
	close(stop)
	sh.mu.Lock()
	t.Logf("%d holds before the crash; responses by status: %v", before, sh.statuses)
	sh.mu.Unlock()
	// Requests caught by the crash may fail (503) or, queued and retried,
	// go through once Redis is back; either way the crash must have come
	// before the sale sold out, with holds created on both sides of it.
	if before >= 300 || len(sh.holds()) == before {
		t.Fatal("Redis was not down in the middle of the burst; the test exercised nothing")
	}
	checkDurable(t, redisURL, dbURL, saleID, sh.holds())
}

// TestProcessKilledDuringBurst SIGKILLs the real binary in the middle of a
// burst of reservations, starts it again, and checks that every hold it had
// reported as created becomes exactly one order.
func TestProcessKilledDuringBurst(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "flashsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	broker := testenv.Kafka(t, localkafka.Options{}) // outlives the process, as a real Kafka would
	dbURL := testenv.Postgres(t)
	port := testenv.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ns := testenv.ID("kill-")
	testenv.CleanupNamespace(t, testenv.Redis(t), ns)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "all", "-http-addr", fmt.Sprintf("127.0.0.1:%d", port), "-namespace", ns)
		cmd.Env = append(os.Environ(), "FLASHSALE_ADMIN_TOKEN="+faultAdmin, "KAFKA_BROKERS="+broker.Addrs()[0],
			"DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(), "FLASHSALE_RELAY_NAME=relay-kill-test")
		logs, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			sc := bufio.NewScanner(logs)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "level=ERROR") || strings.Contains(sc.Text(), "level=WARN") {
					t.Logf("flashsale: %s", sc.Text())
				}
			}
		}()
		testenv.Eventually(t, 30*time.Second, func() error {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("readyz %s", resp.Status)
			}
			return nil
		})
		return cmd
	}
	proc := start()
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })

	saleID := faultSale(t, base, 3000)
	sh := newShoppers(base, saleID)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { sh.run(4000, 16, stop); close(done) }()
	// Kill it mid-burst: once some holds were reported, long before the
	// burst could sell out.
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := len(sh.holds()); n < 100 {
			return fmt.Errorf("only %d holds so far", n)
		}
		return nil
	})
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.Wait()
	close(stop)
	<-done
	before := len(sh.holds())
	if before >= 3000 {
		t.Fatal("the burst sold out before the kill; the test exercised nothing")
	}
	proc = start()
	sh.run(4200, 8, nil)
	t.Logf("%d holds created before the kill", before)
	defer func() {
		if t.Failed() {
			t.Log(kafkaOffsets(broker.Addrs()[0], "flashsale-orders"))
		}
	}()
	checkDurable(t, testenv.RedisURL(), dbURL, saleID, sh.holds())
}

// kafkaOffsets describes, per partition of the hold events topic that
// holds anything, its end offset and what group committed: where a
// consumer stopped, if it did.
func kafkaOffsets(addr, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := persist.GroupOffsets(ctx, persist.KafkaConfig{Brokers: []string{addr}}, group)
	if err != nil {
		return "kafka offsets: " + err.Error()
	}
	s := "group " + group + ":\n"
	for _, p := range slices.Sorted(maps.Keys(offs)) {
		if o := offs[p]; o.End > 0 {
			s += fmt.Sprintf("  partition %d: end %d, committed %d\n", p, o.End, o.Committed)
		}
	}
	return s
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestAuditReportsBrokenInvariants tampers with a clean sale — an order
// without a hold, a counter moved by hand — and expects audit to exit with
// an error and a report that names each problem.
func TestAuditReportsBrokenInvariants(t *testing.T) {
	dbURL := testenv.Postgres(t)
	base, _ := runMain(t, nil, "all", "-admin-token", faultAdmin, "-namespace", testenv.ID("audit-"), "-database-url", dbURL)
	saleID := faultSale(t, base, 20)
	sh := newShoppers(base, saleID)
	sh.run(10, 4, nil)
	checkDurable(t, testenv.RedisURL(), dbURL, saleID, sh.holds())

	ctx := context.Background()
	db, err := persist.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	ghost := engine.Event{Schema: engine.EventSchema, ID: saleID + ".ghost:held", Type: engine.EventCreated, SaleID: saleID, StoreID: "nowhere", OccurredAt: now,
		Hold: engine.Hold{ID: saleID + ".ghost", SaleID: saleID, StoreID: "nowhere", UserID: "ghost", Quantity: 1, State: engine.HoldHeld, CreatedAt: now, ExpiresAt: now, UpdatedAt: now}}
	if err := db.ApplyEvents(ctx, []engine.Event{ghost}); err != nil {
		t.Fatal(err)
	}
	// One unit goes missing from the sale's counter: the counters now say
	// one more is held than the hold records do.
	if err := testenv.Redis(t).HIncrBy(ctx, "{s:"+saleID+"}:stock", "g", -1).Err(); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	am := NewMain()
	am.Stdout, am.Stderr = &out, &out
	if err := am.ParseFlags([]string{"audit", "-sale", saleID, "-redis-url", testenv.RedisURL(), "-database-url", dbURL}); err != nil {
		t.Fatal(err)
	}
	err = am.Run(ctx)
	report := out.String()
	if err == nil || !strings.Contains(err.Error(), "audit of sale") {
		t.Fatalf("audit of a broken sale returned %v:\n%s", err, report)
	}
	for _, want := range []string{"BROKEN: order " + saleID + ".ghost has no hold", "BROKEN: global: holds say held"} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q:\n%s", want, report)
		}
	}
}
