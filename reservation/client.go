package reservation

import (
	"github.com/redis/go-redis/v9"
)

// Tune sets what the ledger wants of a go-redis client's options; call it
// before redis.NewClient. With RESP3 (go-redis's default) every command
// first looks for pending push notifications (client-side caching,
// maintenance events); the ledger uses none, so it speaks RESP2, whose
// replies it reads the same way.
//
// go-redis also peeks at a pooled connection's socket before every command
// (a deadline reset and a recvfrom), which its maintainers put at 10–20%
// of a client's CPU (go-redis issue 2599). Tune keeps that check: it is
// what throws away the connections a restarted Redis closed before a
// command meets them, where hiding the descriptor from it would fail
// commands after a restart.
func Tune(o *redis.Options) { o.Protocol = 2 }

// TuneCluster is Tune for a Redis Cluster client.
func TuneCluster(o *redis.ClusterOptions) { o.Protocol = 2 }
