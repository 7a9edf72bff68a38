// Package localkafka runs an in-process Kafka-protocol broker (franz-go's
// kfake) for `make run` and the tests, when no real Kafka is configured.
// It is a development and test stand-in: production sets KAFKA_BROKERS.
package localkafka

import (
	"fmt"
	"net"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configures a local broker. The zero value is a memory-only broker
// on a random loopback port.
type Options struct {
	// Port to listen on; a random free port when 0.
	Port int
	// DataDir, when set, keeps the log on disk there, so that a restarted
	// broker keeps its topics, messages and committed offsets.
	DataDir string
	// Listen replaces net.Listen, for tests that need to cut connections.
	Listen func(network, address string) (net.Listener, error)
}

// Broker is a running local broker.
type Broker struct {
	c *kfake.Cluster
}

// Start starts a single-node broker.
func Start(o Options) (*Broker, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.ClusterID("flashsale-local")}
	if o.Port != 0 {
		opts = append(opts, kfake.Ports(o.Port))
	}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("local kafka data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(o.DataDir), kfake.SyncWrites())
	}
	if o.Listen != nil {
		opts = append(opts, kfake.ListenFn(o.Listen))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start local kafka: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addrs returns the bootstrap addresses.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker, flushing its log when it has a data dir.
func (b *Broker) Close() { b.c.Close() }
