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
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/reservation"
)

const usage = `flashsale — flash-sale and inventory-reservation engine

Usage: flashsale <command> [flags]

Commands:
  serve        run the API, pages, metrics and the expiry sweeper
  demo         serve, after seeding ~30 stores and a demo sale (what make run uses)
  seed         seed the demo stores and sale into Redis, print them, and exit
  store-token  print the bearer token of a store (-store ID)
  help         show this help

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
	// Clock is the engine's clock; the wall clock by default.
	Clock engine.Clock

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
	case "serve", "demo", "seed", "store-token":
	default:
		fmt.Fprint(m.Stderr, usage)
		return fmt.Errorf("unknown command %q", m.Command)
	}
	fs := flag.NewFlagSet("flashsale "+m.Command, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	if err := m.Config.bind(fs); err != nil {
		return err
	}
	if m.Command == "store-token" {
		fs.StringVar(&m.StoreID, "store", "", "store id")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if m.Command == "store-token" {
		if m.Config.AdminToken == "" || !engine.ValidID(m.StoreID) {
			return errors.New("store-token needs -store ID and the admin token (-admin-token or $FLASHSALE_ADMIN_TOKEN)")
		}
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
	case "store-token":
		fmt.Fprintln(m.Stdout, api.StoreToken(m.Config.AdminToken, m.StoreID))
		return nil
	}
	if m.Config.AdminToken == "" {
		m.Config.AdminToken = "adm_" + engine.RandomID() + engine.RandomID()
		if m.Command != "seed" {
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
	eng, err := engine.New(engine.Config{Ledger: ledger, Clock: m.Clock})
	if err != nil {
		return err
	}

	var demo *demoSale
	if m.Command == "seed" || m.Command == "demo" {
		if demo, err = seedDemo(ctx, eng, m.Clock.Now(), m.Config.DemoStartDelay); err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
		if m.Command == "seed" {
			demo.print(m.Stdout, "http://localhost"+m.Config.HTTPAddr, m.Config.AdminToken)
			return nil
		}
	}

	srv, err := api.New(api.Config{
		Engine:         eng,
		AdminToken:     m.Config.AdminToken,
		Metrics:        metrics,
		Gatherer:       reg,
		Logger:         m.Logger,
		RequestTimeout: m.Config.RequestTimeout,
		Ready:          []api.Check{{Name: "redis", Check: ledger.Ping}},
	})
	if err != nil {
		return err
	}
	return m.serve(ctx, eng, srv, metrics, demo)
}

// openRedis connects to Redis (or Redis Cluster) and checks it answers.
func (m *Main) openRedis(ctx context.Context) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if m.Config.RedisClusterAddrs != "" {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(m.Config.RedisClusterAddrs, ",")})
	} else {
		opt, err := redis.ParseURL(m.Config.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %q: %w", m.Config.RedisURL, err)
		}
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

// serve runs the HTTP server and the sweeper until ctx is done, then shuts
// both down gracefully.
func (m *Main) serve(ctx context.Context, eng *engine.Engine, srv *api.Server, metrics *api.Metrics, demo *demoSale) error {
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.HTTPAddr, err)
	}
	hs := &fasthttp.Server{
		Handler:            srv.Handler(),
		Name:               "flashsale",
		MaxRequestBodySize: 1 << 20,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        60 * time.Second,
		Logger:             slogPrinter{m.Logger},
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		eng.RunSweeper(sweepCtx, m.Config.SweepInterval, func(n int, err error) {
			metrics.ObserveSweep(n, err)
			if err != nil {
				m.Logger.Warn("sweep failed", "err", err)
			}
		})
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	addr := ln.Addr().String()
	m.addrOnce.Do(func() { m.addr <- addr })
	m.Logger.Info("flashsale serving", "addr", addr)
	if demo != nil {
		demo.print(m.Stdout, "http://"+displayAddr(addr), m.Config.AdminToken)
	}

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		m.Logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		err = hs.ShutdownWithContext(sctx)
		cancel()
	}
	stopSweep()
	wg.Wait()
	return err
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
