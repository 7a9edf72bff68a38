package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/persist"
	"github.com/flashsale/flashsale/reservation"
)

// postgresReserve is the row-lock baseline: what a seckill service built on
// a database does per request.
func (f *fixture) postgresReserve(ctx context.Context, o options) (op, func(), error) {
	// persist.Open creates the database when it is missing.
	db, err := persist.Open(ctx, o.databaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("%v (run scripts/ensure-services.sh postgres or set BENCH_DATABASE_URL)", err)
	}
	db.Close()
	cfg, err := pgxpool.ParseConfig(o.databaseURL)
	if err != nil {
		return nil, nil, err
	}
	cfg.MaxConns = int32(min(o.workers, 90))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	schema := "bench_" + f.ns[len("bench-"):]
	_, err = pool.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s;
		CREATE TABLE %[1]s.stock (sale_id text, store_id text, qty integer NOT NULL, PRIMARY KEY (sale_id, store_id));
		CREATE TABLE %[1]s.holds (hold_id text PRIMARY KEY, sale_id text NOT NULL, store_id text NOT NULL,
			user_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO %[1]s.stock VALUES ('hot', 'b00', 100000000);`, schema))
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	update := fmt.Sprintf(`UPDATE %s.stock SET qty = qty - 1 WHERE sale_id = 'hot' AND store_id = 'b00' AND qty > 0`, schema)
	insert := fmt.Sprintf(`INSERT INTO %s.holds (hold_id, sale_id, store_id, user_id) VALUES ($1, 'hot', 'b00', $2)`, schema)
	fn := func(ctx context.Context, _ int, seq int64) error {
		id := strconv.FormatInt(seq, 10)
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, update)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return errors.New("sold out")
			}
			_, err = tx.Exec(ctx, insert, "hot.c"+id, "c"+id)
			return err
		})
	}
	done := func() {
		pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		pool.Close()
	}
	return fn, done, nil
}

// serve runs h on a loopback port and returns a client for it and a stop
// function.
func serve(o options, h fasthttp.RequestHandler) (*fasthttp.HostClient, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s := &fasthttp.Server{Handler: h, Name: "flashsale", ReadTimeout: 10 * time.Second, MaxRequestBodySize: 1 << 20}
	go s.Serve(ln)
	c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: o.workers, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return c, func() { s.Shutdown() }, nil
}

// httpLoad posts a reservation body per call and expects status.
func (f *fixture) httpLoad(c *fasthttp.HostClient, path string, status int) op {
	return func(ctx context.Context, _ int, seq int64) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + c.Addr + path)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		var buf [96]byte
		req.SetBodyRaw(f.reserveBody(seq, buf[:0]))
		if err := c.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != status {
			return fmt.Errorf("%w %d: %s", errStatus, resp.StatusCode(), resp.Body())
		}
		return nil
	}
}

// reserveBody appends the body of shopper seq's reservation to b.
func (f *fixture) reserveBody(seq int64, b []byte) []byte {
	p := f.points[seq%int64(len(f.points))]
	b = append(b, `{"user_id":"d`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","lat":`...)
	b = strconv.AppendFloat(b, p.Lat, 'f', 5, 64)
	b = append(b, `,"lon":`...)
	b = strconv.AppendFloat(b, p.Lon, 'f', 5, 64)
	return append(b, '}')
}

var noopBody = []byte(`{"hold_id":"bench-xxxxxxxxxxxxxxxx.yyyyyyyyyyyyyyyy","sale_id":"bench-xxxxxxxxxxxxxxxx","store_id":"b07","user_id":"d1","quantity":1,"distance_km":1.234,"state":"held","created_at":"2026-11-23T10:00:00Z","expires_at":"2026-11-23T10:10:00Z","updated_at":"2026-11-23T10:00:00Z","store_name":"Bench 7"}`)

// noopHandler reads the request and answers a fixed hold-sized JSON body.
func noopHandler(ctx *fasthttp.RequestCtx) {
	_ = ctx.PostBody()
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetContentType("application/json")
	ctx.SetBody(noopBody)
}

// httpNoop is the ceiling: noopHandler over HTTP.
func (f *fixture) httpNoop(o options) (op, func(), error) {
	c, stop, err := serve(o, noopHandler)
	if err != nil {
		return nil, nil, err
	}
	return f.httpLoad(c, "/v1/sales/noop/reservations", fasthttp.StatusCreated), stop, nil
}

// httpReserve serves the real API over eng (metrics on) and posts
// reservations to it.
func (f *fixture) httpReserve(o options, eng *engine.Engine, saleID string) (op, func(), error) {
	h, err := reserveHandler(eng)
	if err != nil {
		return nil, nil, err
	}
	c, stop, err := serve(o, h)
	if err != nil {
		return nil, nil, err
	}
	return f.httpLoad(c, "/v1/sales/"+saleID+"/reservations", fasthttp.StatusCreated), stop, nil
}

// memoryLedger is the ledger of the d-memory scenario: every reservation
// is created at once at its nearest candidate, nothing is stored, Redis is
// not asked (sales are still loaded from it). It is not a ledger anyone
// could use; it measures what the reserve endpoint costs apart from the
// store behind it.
type memoryLedger struct{ *reservation.Ledger }

func (l memoryLedger) Reserve(_ context.Context, saleID string, now time.Time, reqs []engine.LedgerReserve) ([]engine.LedgerOutcome, error) {
	out := make([]engine.LedgerOutcome, len(reqs))
	for i, r := range reqs {
		if len(r.Candidates) == 0 {
			out[i].Err = engine.ErrNoStoreStock
			continue
		}
		c := r.Candidates[0]
		out[i].Hold = engine.Hold{ID: r.HoldID, SaleID: saleID, StoreID: c.StoreID, UserID: r.UserID, Quantity: r.Quantity,
			DistanceKm: c.DistanceKm, State: engine.HoldHeld, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute), UpdatedAt: now}
	}
	return out, nil
}

// ReserveBatches answers each batch as Reserve does (the embedded Redis
// ledger's own would ask Redis).
func (l memoryLedger) ReserveBatches(ctx context.Context, now time.Time, batches []engine.SaleBatch) {
	engine.ReserveEach(ctx, l, now, batches)
}

// reserveHandler is the real API's handler over eng, metrics on (the
// server's own registry), as in production.
func reserveHandler(eng *engine.Engine) (fasthttp.RequestHandler, error) {
	srv, err := api.New(api.Config{Engine: eng, AdminToken: "bench-admin-token-0123456789", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return srv.Handler(), nil
}

// memoryEngine is an engine (coalescing as cc says) whose ledger is
// memoryLedger.
func (f *fixture) memoryEngine(cc engine.CoalesceConfig) (*engine.Engine, error) {
	return engine.New(engine.Config{Ledger: memoryLedger{f.ledger}, Coalesce: &cc})
}

// httpMemory serves the real API over an engine (coalescing on, as
// configured) whose ledger is memoryLedger.
func (f *fixture) httpMemory(o options, saleID string) (op, func(), error) {
	eng, err := f.memoryEngine(o.coalesce)
	if err != nil {
		return nil, nil, err
	}
	return f.httpReserve(o, eng, saleID)
}
