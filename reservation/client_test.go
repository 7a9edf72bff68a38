package reservation_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

// TestTunedClientSurvivesClosedConnections: a client set up by Tune speaks
// RESP2, and when the server closes every connection of its full pool (as
// a restart does), the commands that follow all succeed, on new
// connections.
func TestTunedClientSurvivesClosedConnections(t *testing.T) {
	admin := testenv.Redis(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 16
	opt.ClientName = testenv.ID("tune-")
	reservation.Tune(opt)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if hello, err := rdb.Do(ctx, "HELLO").Slice(); err != nil {
		t.Fatalf("HELLO: %v", err)
	} else if proto := helloField(hello, "proto"); proto != int64(2) {
		t.Fatalf("protocol %v, want 2", proto)
	}
	// Fill the pool: 16 commands at once, each holding a connection.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { rdb.Do(ctx, "BLPOP", testenv.ID("tune-nothing-"), "0.05") })
	}
	wg.Wait()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for line := range strings.SplitSeq(list, "\n") {
		if !strings.Contains(line, " name="+opt.ClientName+" ") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed < 16 {
		t.Fatalf("killed %d connections, want the pool's 16", killed)
	}
	for i := range 16 {
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("command %d after the server closed every connection: %v", i, err)
		}
	}
}

// helloField returns a field of a RESP2 HELLO answer (a flat list).
func helloField(hello []any, key string) any {
	for i := 0; i+1 < len(hello); i += 2 {
		if hello[i] == key {
			return hello[i+1]
		}
	}
	return nil
}
