package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/internal/localkafka"
	"github.com/flashsale/flashsale/persist"
	"github.com/flashsale/flashsale/reservation"
)

// The consumer groups of the hold events topic.
const (
	ordersGroup = "flashsale-orders"
	notifyGroup = "flashsale-notify"
)

// runParts runs the components of a long-running command until ctx is
// done, behind one HTTP server: the whole API for commands that serve it,
// only /metrics, /healthz and /readyz for the workers.
func (m *Main) runParts(ctx context.Context, p parts, _ redis.UniversalClient, eng *engine.Engine,
	ledger *reservation.Ledger, outbox *reservation.Outbox, metrics *api.Metrics, reg *prometheus.Registry,
) error {
	checks := []api.Check{{Name: "redis", Check: ledger.Ping}}

	var db *persist.DB
	if p.postgres() {
		var err error
		if db, err = m.openPostgres(ctx); err != nil {
			return err
		}
		defer db.Close()
		if m.Command == "all" || m.Command == "demo" {
			if err := db.Migrate(ctx); err != nil {
				return err
			}
		}
		checks = append(checks, api.Check{Name: "postgres", Check: db.Ping})
	}

	var kcfg persist.KafkaConfig
	if p.kafka() {
		brokers := splitList(m.Config.KafkaBrokers)
		if len(brokers) == 0 {
			b, err := localkafka.Start(localkafka.Options{DataDir: m.Config.KafkaDataDir})
			if err != nil {
				return err
			}
			defer b.Close()
			brokers = b.Addrs()
			m.Logger.Info("KAFKA_BROKERS is unset: started an in-process Kafka-protocol broker (not for production)",
				"addr", brokers[0], "data_dir", m.Config.KafkaDataDir)
		}
		kcfg = persist.KafkaConfig{Brokers: brokers, Topic: m.Config.KafkaTopic, Partitions: m.Config.KafkaPartitions}
		if err := ensureTopic(ctx, kcfg); err != nil {
			return fmt.Errorf("%w; check KAFKA_BROKERS", err)
		}
		checks = append(checks, api.Check{Name: "kafka", Check: func(ctx context.Context) error { return dialAny(ctx, brokers) }})
	}

	var demo *demoSale
	if m.Command == "demo" {
		var err error
		if demo, err = seedDemo(ctx, eng, m.Clock.Now(), m.Config.DemoStartDelay); err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
	}

	cfg := api.Config{
		Engine:         eng,
		AdminToken:     m.Config.AdminToken,
		Metrics:        metrics,
		Gatherer:       reg,
		Logger:         m.Logger,
		RequestTimeout: m.Config.RequestTimeout,
		Ready:          checks,
	}
	if db != nil {
		cfg.Stores = db
	}
	srv, err := api.New(cfg)
	if err != nil {
		return err
	}

	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var wg sync.WaitGroup
	fatal := make(chan error, 8)
	if p.sweep {
		wg.Go(func() {
			eng.RunSweeper(workCtx, m.Config.SweepInterval, func(n int, err error) {
				metrics.ObserveSweep(n, err)
				if err != nil {
					m.Logger.Warn("sweep failed", "err", err)
				}
			})
		})
	}
	if p.relay {
		pub := persist.NewPublisher(kcfg)
		defer pub.Close()
		relay, err := engine.NewRelay(engine.RelayConfig{
			Outbox:    outbox,
			Publisher: pub,
			Sales:     eng.ActiveSaleIDs,
			Consumer:  m.Config.RelayName,
			OnBatch:   metrics.ObserveRelayBatch,
		})
		if err != nil {
			return err
		}
		wg.Go(func() {
			relay.Run(workCtx, func(err error) { m.Logger.Warn("relay pass failed", "err", err) })
		})
		wg.Go(func() { m.watchOutboxes(workCtx, eng, outbox, metrics) })
	}
	if p.orders {
		wg.Go(func() {
			err := persist.Consume(workCtx, persist.ConsumerConfig{
				KafkaConfig: kcfg, Group: ordersGroup, Logger: m.Logger,
				OnBatch: metrics.ConsumerObserver(ordersGroup),
			}, db.ApplyEvents)
			if err != nil {
				fatal <- fmt.Errorf("orders consumer: %w", err)
			}
		})
	}
	if p.notify {
		wg.Go(func() {
			err := persist.Consume(workCtx, persist.ConsumerConfig{
				KafkaConfig: kcfg, Group: notifyGroup, Logger: m.Logger,
				OnBatch: metrics.ConsumerObserver(notifyGroup),
			}, func(ctx context.Context, events []engine.Event) error {
				hooks, err := webhookURLs(ctx, eng)
				if err != nil {
					return err
				}
				_, err = db.RecordStoreEvents(ctx, events, func(id string) string { return hooks[id] })
				return err
			})
			if err != nil {
				fatal <- fmt.Errorf("notify consumer: %w", err)
			}
		})
		admin := m.Config.AdminToken
		worker := &persist.WebhookWorker{
			DB:        db,
			Secret:    func(storeID string) string { return engine.WebhookSecret(admin, storeID) },
			Logger:    m.Logger,
			OnAttempt: metrics.ObserveWebhook,
		}
		wg.Go(func() { worker.Run(workCtx, m.Config.WebhookInterval) })
	}

	handler := srv.OpsHandler()
	if p.api {
		handler = srv.Handler()
	}
	err = m.serveHTTP(ctx, handler, srv, demo, fatal)
	stopWork()
	wg.Wait()
	return err
}

// serveHTTP serves handler until ctx is done or a component fails, then
// shuts down gracefully.
func (m *Main) serveHTTP(ctx context.Context, handler fasthttp.RequestHandler, srv *api.Server, demo *demoSale, fatal <-chan error) error {
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.HTTPAddr, err)
	}
	hs := &fasthttp.Server{
		Handler:            handler,
		Name:               "flashsale",
		MaxRequestBodySize: 1 << 20,
		ReadTimeout:        10 * time.Second,
		// No write timeout: store event streams stay open for hours; a
		// stream whose store went away ends at its next write.
		IdleTimeout: 60 * time.Second,
		Logger:      slogPrinter{m.Logger},
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	addr := ln.Addr().String()
	m.Logger.Info("flashsale running", "command", m.Command, "addr", addr)
	if demo != nil {
		demo.print(m.Stdout, "http://"+displayAddr(addr), m.Config.AdminToken)
	}
	m.addrOnce.Do(func() { m.addr <- addr })

	select {
	case err = <-serveErr:
	case err = <-fatal:
	case <-ctx.Done():
		m.Logger.Info("shutting down")
	}
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	if serr := hs.ShutdownWithContext(sctx); serr != nil && err == nil {
		err = serr
	}
	return err
}

// watchOutboxes keeps the outbox backlog gauge current.
func (m *Main) watchOutboxes(ctx context.Context, eng *engine.Engine, outbox *reservation.Outbox, metrics *api.Metrics) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ids, err := eng.ActiveSaleIDs(ctx)
		if err == nil {
			var total int64
			for _, id := range ids {
				n, err := outbox.Len(ctx, id)
				if err != nil {
					break
				}
				total += n
			}
			metrics.SetOutboxPending(total)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// webhookURLs maps store ids to their webhook URLs.
func webhookURLs(ctx context.Context, eng *engine.Engine) (map[string]string, error) {
	stores, err := eng.Stores(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(stores))
	for _, s := range stores {
		if s.WebhookURL != "" {
			out[s.ID] = s.WebhookURL
		}
	}
	return out, nil
}

// ensureTopic creates the hold events topic, retrying for a while when the
// brokers are still starting.
func ensureTopic(ctx context.Context, cfg persist.KafkaConfig) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := persist.EnsureTopic(cctx, cfg)
		cancel()
		if err == nil || !errors.Is(err, engine.ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dialAny checks that at least one broker accepts connections.
func dialAny(ctx context.Context, brokers []string) error {
	var d net.Dialer
	var err error
	for _, b := range brokers {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		var c net.Conn
		c, err = d.DialContext(cctx, "tcp", b)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
