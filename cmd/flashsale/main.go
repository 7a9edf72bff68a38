// Command flashsale is the flash-sale and inventory-reservation engine: one
// binary whose subcommands run the API, seed a demo, and operate the system.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/persist"
	"github.com/flashsale/flashsale/reservation"
)

const usage = `flashsale — flash-sale and inventory-reservation engine

Usage: flashsale <command> [flags]

Commands:
  all          everything in one process: API, sweeper, relay, orders and notify
  demo         all, after seeding ~30 stores and a demo sale (what make run uses)
  serve        the API and pages (stateless; run as many as you like)
  sweep        expire holds past their TTL
  relay        move hold events from the sales' outboxes to Kafka
  orders       write hold events from Kafka to the PostgreSQL orders table
  notify       feed hold events from Kafka to store streams and webhooks
  migrate      apply the PostgreSQL migrations and exit
  audit        check a sale's invariants across Redis and PostgreSQL (-sale ID)
  seed         seed the demo stores and sale into Redis, print them, and exit
  store-token  print the bearer token and webhook secret of a store (-store ID)
  loadtest     attack a deployment over HTTP with a flash sale (vegeta) and audit it
  help         show this help

Without KAFKA_BROKERS, all and demo start an in-process Kafka-protocol broker.
Run "flashsale <command> -h" for the flags of a command. Every flag also
reads an environment variable, named in its help.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "flashsale:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "flashsale:", err)
		os.Exit(1)
	}
}

// Main is the program: parsed settings, the services it wires, and their
// shutdown. Tests run it in-process on port 0.
type Main struct {
	Config  Config
	Command string
	// StoreID is the argument of store-token.
	StoreID string
	// SaleID, AuditWait are the arguments of audit.
	SaleID    string
	AuditWait time.Duration
	// Clock is the engine's clock; the wall clock by default.
	Clock engine.Clock
	// lt holds the arguments of loadtest.
	lt loadtestArgs

	Stdout, Stderr io.Writer
	Logger         *slog.Logger

	addrOnce sync.Once
	addr     chan string
}

// NewMain returns a Main with default settings writing to the process's
// standard streams.
func NewMain() *Main {
	return &Main{
		Config: DefaultConfig(),
		Clock:  engine.SystemClock{},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		addr:   make(chan string, 1),
	}
}

// parts says which components a command runs.
type parts struct {
	api, sweep, relay, orders, notify bool
}

func (p parts) kafka() bool    { return p.relay || p.orders || p.notify }
func (p parts) postgres() bool { return p.api || p.orders || p.notify }

var commandParts = map[string]parts{
	"all":    {api: true, sweep: true, relay: true, orders: true, notify: true},
	"demo":   {api: true, sweep: true, relay: true, orders: true, notify: true},
	"serve":  {api: true},
	"sweep":  {sweep: true},
	"relay":  {relay: true},
	"orders": {orders: true},
	"notify": {notify: true},
}

// ParseFlags reads the command and its flags from args.
func (m *Main) ParseFlags(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errors.New("no command given")
	}
	m.Command = args[0]
	switch m.Command {
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return flag.ErrHelp
	case "seed", "store-token", "migrate", "audit":
	case "loadtest":
		return m.parseLoadtest(args[1:])
	default:
		if _, ok := commandParts[m.Command]; !ok {
			fmt.Fprint(m.Stderr, usage)
			return fmt.Errorf("unknown command %q", m.Command)
		}
	}
	fs := flag.NewFlagSet("flashsale "+m.Command, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	ef := newEnvFlags(fs)
	m.Config.bind(ef)
	switch m.Command {
	case "store-token":
		fs.StringVar(&m.StoreID, "store", "", "store id")
	case "audit":
		fs.StringVar(&m.SaleID, "sale", "", "sale id")
		fs.DurationVar(&m.AuditWait, "wait", 0, "how long to wait for events in flight to be written before calling a difference broken")
	}
	if _, err := ef.parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch m.Command {
	case "store-token":
		if m.Config.AdminToken == "" || !engine.ValidID(m.StoreID) {
			return errors.New("store-token needs -store ID and the admin token (-admin-token or $FLASHSALE_ADMIN_TOKEN)")
		}
	case "audit":
		if !engine.ValidID(m.SaleID) || m.AuditWait < 0 {
			return errors.New("audit needs -sale ID (and -wait, when given, must not be negative)")
		}
	case "notify":
		if m.Config.AdminToken == "" {
			return errors.New("notify signs webhooks with secrets derived from the admin token: set -admin-token or $FLASHSALE_ADMIN_TOKEN (the same as the API's)")
		}
	}
	if p := commandParts[m.Command]; p.kafka() && m.Config.KafkaBrokers == "" && m.Command != "all" && m.Command != "demo" {
		return fmt.Errorf("%s needs Kafka: set -kafka-brokers or $KAFKA_BROKERS (only all and demo start an in-process broker)", m.Command)
	}
	return m.Config.validate()
}

// Addr returns the address the HTTP server listens on, once it does.
func (m *Main) Addr(ctx context.Context) (string, error) {
	select {
	case a := <-m.addr:
		m.addr <- a
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Run runs the command until ctx is done (for servers) or the work is
// finished.
func (m *Main) Run(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, nil))
	}
	switch m.Command {
	case "loadtest":
		return m.runLoadtest(ctx)
	case "store-token":
		fmt.Fprintf(m.Stdout, "token: %s\nwebhook secret: %s\n",
			engine.StoreToken(m.Config.AdminToken, m.StoreID), engine.WebhookSecret(m.Config.AdminToken, m.StoreID))
		return nil
	case "migrate":
		db, err := m.openPostgres(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.Migrate(ctx); err != nil {
			return err
		}
		fmt.Fprintln(m.Stdout, "migrations applied")
		return nil
	}
	if m.Config.AdminToken == "" {
		m.Config.AdminToken = "adm_" + engine.RandomID() + engine.RandomID()
		if m.Command != "seed" && m.Command != "audit" {
			m.Logger.Info("no admin token configured; generated one", "token", m.Config.AdminToken)
		}
	}

	rdb, err := m.openRedis(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := api.NewMetrics(reg)
	if err != nil {
		return err
	}
	ledger := reservation.New(rdb, reservation.WithNamespace(m.Config.Namespace), reservation.WithScriptObserver(metrics.ObserveScript))
	if err := ledger.Load(ctx); err != nil {
		return fmt.Errorf("%w (is Redis running? see README)", err)
	}
	ecfg := engine.Config{Ledger: ledger, Clock: m.Clock}
	if m.Config.Coalesce {
		ecfg.Coalesce = &engine.CoalesceConfig{
			MaxBatch:  m.Config.CoalesceMaxBatch,
			MaxWait:   m.Config.CoalesceMaxWait,
			QueueSize: m.Config.CoalesceQueue,
			InFlight:  m.Config.CoalesceInFlight,
			Calls:     m.Config.CoalesceCalls,
			MaxSales:  m.Config.CoalesceMaxSales,
			OnBatch:   metrics.ObserveReserveBatch,
			OnQueued:  metrics.ObserveReserveQueued,
			OnCall:    metrics.ObserveReserveTrip,
		}
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		return err
	}
	if err := api.RegisterCoalescer(reg, eng.CoalesceStats); err != nil {
		return err
	}
	outbox := reservation.NewOutbox(rdb, 0)

	switch m.Command {
	case "seed":
		demo, err := seedDemo(ctx, eng, m.Clock.Now(), m.Config.DemoStartDelay)
		if err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
		demo.print(m.Stdout, "http://localhost"+m.Config.HTTPAddr, m.Config.AdminToken)
		return nil
	case "audit":
		db, err := m.openPostgres(ctx)
		if err != nil {
			return err
		}
		defer db.Close()
		return m.audit(ctx, eng, db, outbox)
	}
	return m.runParts(ctx, commandParts[m.Command], rdb, eng, ledger, outbox, metrics, reg)
}

// audit audits one sale, waiting up to AuditWait for events in flight, and
// returns an error when an invariant does not hold.
func (m *Main) audit(ctx context.Context, eng *engine.Engine, db *persist.DB, outbox *reservation.Outbox) error {
	deadline := time.Now().Add(m.AuditWait)
	for {
		r, err := eng.AuditSale(ctx, m.SaleID, db.SaleOrders, outbox.Len)
		if err != nil {
			return fmt.Errorf("audit %s: %w", m.SaleID, err)
		}
		if r.OK() || len(r.Broken) > 0 && len(r.Lagging) == 0 || time.Now().After(deadline) {
			fmt.Fprint(m.Stdout, r.String())
			if !r.OK() {
				return fmt.Errorf("audit of sale %s failed: %d broken, %d not written", m.SaleID, len(r.Broken), len(r.Lagging))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// openRedis connects to Redis (or Redis Cluster) and checks it answers.
func (m *Main) openRedis(ctx context.Context) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if m.Config.RedisClusterAddrs != "" {
		opt := &redis.ClusterOptions{Addrs: strings.Split(m.Config.RedisClusterAddrs, ",")}
		reservation.TuneCluster(opt)
		rdb = redis.NewClusterClient(opt)
	} else {
		opt, err := redis.ParseURL(m.Config.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %q: %w", m.Config.RedisURL, err)
		}
		reservation.Tune(opt)
		rdb = redis.NewClient(opt)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cannot reach Redis (%s%s): %v; start it with scripts/ensure-services.sh redis or set REDIS_URL",
			m.Config.RedisURL, m.Config.RedisClusterAddrs, err)
	}
	return rdb, nil
}

// openPostgres connects to PostgreSQL, creating the database if missing.
func (m *Main) openPostgres(ctx context.Context) (*persist.DB, error) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := persist.Open(pctx, m.Config.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("cannot reach PostgreSQL (%s): %v; start it with scripts/ensure-services.sh postgres or set DATABASE_URL",
			redactURL(m.Config.DatabaseURL), err)
	}
	return db, nil
}

// redactURL hides a URL's password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// displayAddr turns a listen address into one a browser can use.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "::" || host == "0.0.0.0" {
		return "localhost:" + port
	}
	return net.JoinHostPort(host, port)
}

// slogPrinter adapts slog to fasthttp's Logger.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) { p.l.Warn(fmt.Sprintf(format, args...)) }
