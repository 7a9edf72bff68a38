package persist

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/engine"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is flashsale's PostgreSQL store. It is safe for concurrent use.
type DB struct {
	pool *pgxpool.Pool
}

// Open connects to PostgreSQL at databaseURL, creating the database when it
// does not exist. It returns an error wrapping engine.ErrUnavailable when
// the server does not answer.
func Open(ctx context.Context, databaseURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	err = pool.Ping(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		pool.Close()
		if err := createDatabase(ctx, databaseURL, cfg.ConnConfig.Database); err != nil {
			return nil, err
		}
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
		}
		err = pool.Ping(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return &DB{pool: pool}, nil
}

// createDatabase creates database name through the server's "postgres"
// database.
func createDatabase(ctx context.Context, databaseURL, name string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that PostgreSQL answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return nil
}

// Migrate applies the embedded migrations not applied yet, in name order,
// each in its own transaction, under an advisory lock so that concurrent
// starters do not race.
func (db *DB) Migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7265110)"); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7265110)")
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)", name).Scan(&done); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if done {
			continue
		}
		sql, _ := migrations.ReadFile(name)
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

// ApplyEvents writes hold events to the orders table in one transaction:
// each event is recorded once by id, and an order only moves forward (a
// late "created" never overwrites a final state). Applying the same events
// again changes nothing.
func (db *DB) ApplyEvents(ctx context.Context, events []engine.Event) error {
	if len(events) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, e := range events {
		h := e.Hold
		b.Queue(`INSERT INTO order_events (event_id, hold_id, type, occurred_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (event_id) DO NOTHING`, e.ID, h.ID, e.Type, e.OccurredAt)
		b.Queue(`INSERT INTO orders (hold_id, sale_id, store_id, user_id, quantity, distance_km, state, state_rank, created_at, expires_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (hold_id) DO UPDATE SET state = EXCLUDED.state, state_rank = EXCLUDED.state_rank, updated_at = EXCLUDED.updated_at
			WHERE orders.state_rank < EXCLUDED.state_rank`,
			h.ID, e.SaleID, h.StoreID, h.UserID, h.Quantity, h.DistanceKm, string(h.State), h.State.Rank(), h.CreatedAt, h.ExpiresAt, h.UpdatedAt)
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("%w: apply %d events: %v", engine.ErrUnavailable, len(events), err)
	}
	return nil
}

const orderColumns = `hold_id, sale_id, store_id, user_id, quantity, distance_km, state, created_at, expires_at, updated_at, packed_at`

func scanOrder(row pgx.Row) (engine.Order, error) {
	var o engine.Order
	var state string
	err := row.Scan(&o.ID, &o.SaleID, &o.StoreID, &o.UserID, &o.Quantity, &o.DistanceKm, &state,
		&o.CreatedAt, &o.ExpiresAt, &o.UpdatedAt, &o.PackedAt)
	o.State = engine.HoldState(state)
	return o, err
}

// StoreOrders returns a store's orders, newest first, at most limit.
func (db *DB) StoreOrders(ctx context.Context, storeID string, limit int) ([]engine.Order, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE store_id = $1 ORDER BY created_at DESC, hold_id LIMIT $2`, storeID, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return collectOrders(rows)
}

// SaleOrders returns every order of a sale.
func (db *DB) SaleOrders(ctx context.Context, saleID string) ([]engine.Order, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id = $1`, saleID)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return collectOrders(rows)
}

func collectOrders(rows pgx.Rows) ([]engine.Order, error) {
	defer rows.Close()
	out := []engine.Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return out, nil
}

// MarkPacked records that a store packed a held order. It returns
// engine.ErrUnknownHold when the store has no such order, and the state's
// error (engine.ErrHoldExpired, ...) when the order is no longer held.
// Marking twice keeps the first time.
func (db *DB) MarkPacked(ctx context.Context, storeID, holdID string, at time.Time) (engine.Order, error) {
	row := db.pool.QueryRow(ctx, `UPDATE orders SET packed_at = COALESCE(packed_at, $3)
		WHERE hold_id = $1 AND store_id = $2 AND state IN ('held', 'confirmed') RETURNING `+orderColumns, holdID, storeID, at)
	o, err := scanOrder(row)
	if errors.Is(err, pgx.ErrNoRows) {
		row := db.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE hold_id = $1 AND store_id = $2`, holdID, storeID)
		o, err = scanOrder(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return engine.Order{}, fmt.Errorf("order %q: %w", holdID, engine.ErrUnknownHold)
		}
		if err == nil {
			switch o.State {
			case engine.HoldCancelled:
				err = engine.ErrHoldCancelled
			default:
				err = engine.ErrHoldExpired
			}
		}
		return o, err
	}
	if err != nil {
		return engine.Order{}, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return o, nil
}

// CountEvents returns how many order events were applied for a hold (for
// audits and tests).
func (db *DB) CountEvents(ctx context.Context, holdID string) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM order_events WHERE hold_id = $1`, holdID).Scan(&n)
	return n, err
}

// Pool exposes the connection pool to tests in this module.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }
