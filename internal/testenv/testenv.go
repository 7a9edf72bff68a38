// Package testenv gives integration tests their real services, isolated
// per test, and a clock tests can move.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/reservation"
)

// RedisURL is the Redis the tests use: $REDIS_URL or the local default.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Redis returns a client of the test Redis, closed when the test ends. A
// Redis that does not answer fails the test with how to start one.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	opt.PoolSize = 64
	reservation.Tune(opt)
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("these tests need Redis at %s (%v): run `scripts/ensure-services.sh redis` or `make test`, or set REDIS_URL", RedisURL(), err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// ID returns a random id with a prefix, to isolate one test's sales,
// stores and namespaces from every other test sharing the server.
func ID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// CleanupNamespace deletes, when the test ends, the keys of every sale the
// namespace lists, and its store and sale lists.
func CleanupNamespace(t testing.TB, rdb redis.UniversalClient, ns string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		ids, _ := rdb.SMembers(ctx, ns+":sales").Result()
		for _, id := range ids {
			rdb.Del(ctx, reservation.SaleKeys(id)...)
		}
		rdb.Del(ctx, ns+":stores", ns+":sales")
	})
}

// Ledger returns the test Redis and a ledger over it in a namespace of the
// test's own (its name starts with prefix), scripts loaded; the
// namespace and its sales are deleted when the test ends.
func Ledger(t testing.TB, prefix string) (*redis.Client, *reservation.Ledger) {
	t.Helper()
	rdb := Redis(t)
	ns := ID(prefix)
	CleanupNamespace(t, rdb, ns)
	ledger := reservation.New(rdb, reservation.WithNamespace(ns))
	if err := ledger.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rdb, ledger
}

// Clock is a clock tests set and move; safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's reading.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
