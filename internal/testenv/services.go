package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/internal/localkafka"
)

// DatabaseURL is the PostgreSQL database the tests use: $TEST_DATABASE_URL
// or the local "test" database.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/test?sslmode=disable"
}

// Postgres creates a schema of its own for the test and returns a URL whose
// connections use it (search_path), so tests never see each other's rows.
// The schema is dropped when the test ends. A PostgreSQL that does not
// answer fails the test with how to start one.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		t.Fatalf("these tests need PostgreSQL at %s (%v): run `scripts/ensure-services.sh postgres` or `make test`, or set TEST_DATABASE_URL", DatabaseURL(), err)
	}
	defer conn.Close(context.Background())
	schema := strings.ReplaceAll(ID("t_"), "-", "_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, DatabaseURL())
		if err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(DatabaseURL())
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Kafka starts an in-process Kafka-protocol broker for the test and
// returns its bootstrap address; it is closed when the test ends.
func Kafka(t testing.TB, o localkafka.Options) *localkafka.Broker {
	t.Helper()
	b, err := localkafka.Start(o)
	if err != nil {
		t.Fatalf("local kafka: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Eventually polls cond every 20 ms until it returns nil or timeout passes,
// then fails the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KafkaBehindProxy starts an in-process broker that clients reach only
// through p: the broker listens on a port of its own but advertises the
// proxy's address, so cutting the proxy cuts every client off the broker.
func KafkaBehindProxy(t testing.TB, p *Proxy, dataDir string) *localkafka.Broker {
	t.Helper()
	return Kafka(t, localkafka.Options{DataDir: dataDir, Listen: func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		p.SetTarget(ln.Addr().String())
		return advertised{ln, p.ln.Addr()}, nil
	}})
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
