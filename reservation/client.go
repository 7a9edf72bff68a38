package reservation

import (
	"context"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tune sets what the ledger wants of a go-redis client's options; call it
// before redis.NewClient. The hot path sends one script call per batch of
// reservations, and two things go-redis does around every command cost as
// much as a small batch's own client-side work:
//
//   - Before handing out a pooled connection, go-redis peeks at its socket
//     (a deadline reset and a recvfrom system call) to catch connections
//     the server closed. Tune dials connections that hide their file
//     descriptor from that check. A connection that died is then found by
//     the command itself, which go-redis retries on a fresh one: safe here,
//     because every script of the ledger is idempotent for its arguments
//     (a retried reservation replays its hold; see DESIGN.md).
//   - With RESP3 (go-redis's default) every command first looks for
//     pending push notifications; the ledger uses none, and speaks RESP2.
//
// Connections over TLS are dialled as go-redis would.
func Tune(o *redis.Options) {
	o.Protocol = 2
	if o.Dialer == nil && o.TLSConfig == nil {
		o.Dialer = dialer(o.DialTimeout)
	}
}

// TuneCluster is Tune for a Redis Cluster client.
func TuneCluster(o *redis.ClusterOptions) {
	o.Protocol = 2
	if o.Dialer == nil && o.TLSConfig == nil {
		o.Dialer = dialer(o.DialTimeout)
	}
}

func dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout == 0 {
		timeout = 5 * time.Second // go-redis's default
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return plainConn{c}, nil
	}
}

// plainConn is a net.Conn without the SyscallConn method, so that go-redis
// skips its per-command socket peek.
type plainConn struct{ net.Conn }
