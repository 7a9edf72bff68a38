package reservation_test

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/internal/testenv"
	"github.com/flashsale/flashsale/reservation"
)

// TestTunedClientSurvivesAClosedConnection: a client set up by Tune hides
// its connections' file descriptors (so go-redis does not peek at them
// before every command) and speaks RESP2; when the server closes its
// connection, the next command still succeeds, on a new one.
func TestTunedClientSurvivesAClosedConnection(t *testing.T) {
	admin := testenv.Redis(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 1
	reservation.Tune(opt)
	if opt.Protocol != 2 {
		t.Fatalf("protocol %d, want 2", opt.Protocol)
	}
	dial := opt.Dialer
	var dialled []net.Conn
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		dialled = append(dialled, c)
		return c, err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	id, err := rdb.ClientID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dialled[0].(syscall.Conn); ok {
		t.Fatal("a tuned connection exposes its file descriptor: go-redis would peek at it before every command")
	}
	if n, err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Int(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL ID %d: %d killed, %v", id, n, err)
	}
	key := testenv.ID("tune-")
	t.Cleanup(func() { admin.Del(context.Background(), key) })
	for i := range 3 {
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("command %d after the server closed the connection: %v", i, err)
		}
	}
	if len(dialled) < 2 {
		t.Fatalf("%d connections dialled, want a new one after the kill", len(dialled))
	}
}
