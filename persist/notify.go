package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flashsale/flashsale/engine"
)

// RecordStoreEvents appends hold events to their stores' notification logs
// and, for stores with a webhook URL (webhookURL returns "" for none),
// queues a delivery, all in one transaction of two statements. An event
// already recorded is skipped, so redelivered events notify nobody twice.
// Events keep their order: a store's notifications are numbered in the
// order its events arrive. It returns how many events were new.
func (db *DB) RecordStoreEvents(ctx context.Context, events []engine.Event, webhookURL func(storeID string) string) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	ids := make([]string, len(events))
	stores := make([]string, len(events))
	types := make([]string, len(events))
	payloads := make([]string, len(events))
	for i, e := range events {
		p, err := engine.EncodeEvent(e)
		if err != nil {
			return 0, err
		}
		ids[i], stores[i], types[i], payloads[i] = e.ID, e.StoreID, e.Type, string(p)
	}
	fresh := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// WITH ORDINALITY and ORDER BY keep the batch's order in seq.
		rows, err := tx.Query(ctx, `INSERT INTO store_events (event_id, store_id, type, payload)
			SELECT id, store, type, payload::json FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
				WITH ORDINALITY AS e(id, store, type, payload, n)
			ORDER BY n
			ON CONFLICT (event_id) DO NOTHING RETURNING seq, store_id`, ids, stores, types, payloads)
		if err != nil {
			return err
		}
		var seqs []int64
		var hookStores, urls []string
		fresh = 0
		for rows.Next() {
			var seq int64
			var store string
			if err := rows.Scan(&seq, &store); err != nil {
				return err
			}
			fresh++
			if u := webhookURL(store); u != "" {
				seqs, hookStores, urls = append(seqs, seq), append(hookStores, store), append(urls, u)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO webhook_deliveries (delivery_id, store_id, seq, url)
			SELECT 'dlv-' || seq, store, seq, url FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(seq, store, url)`,
			seqs, hookStores, urls)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%w: record store events: %v", engine.ErrUnavailable, err)
	}
	return fresh, nil
}

// StoreEvents returns a store's notifications after seq, oldest first, at
// most limit.
func (db *DB) StoreEvents(ctx context.Context, storeID string, after int64, limit int) ([]engine.StoreEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, type, payload FROM store_events WHERE store_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, storeID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []engine.StoreEvent
	for rows.Next() {
		var e engine.StoreEvent
		if err := rows.Scan(&e.Seq, &e.Type, &e.Payload); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return out, nil
}

// Delivery is a webhook delivery due for an attempt.
type Delivery struct {
	ID       int64
	Delivery string // stable delivery id the receiver dedupes on
	StoreID  string
	URL      string
	Type     string
	Payload  json.RawMessage
	Attempts int // attempts made before this one
}

// ClaimDeliveries leases up to limit pending deliveries whose time has
// come: their next attempt moves lease ahead, so that concurrent workers
// never attempt the same delivery at once.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	rows, err := db.pool.Query(ctx, `
		WITH due AS (
			SELECT id FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at <= $1
			ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE webhook_deliveries d SET next_attempt_at = $2
		FROM due, store_events e
		WHERE d.id = due.id AND e.seq = d.seq
		RETURNING d.id, d.delivery_id, d.store_id, d.url, e.type, e.payload, d.attempts`, now, now.Add(lease), limit)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.Delivery, &d.StoreID, &d.URL, &d.Type, &d.Payload, &d.Attempts); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// FinishAttempt records an attempt: delivered when attemptErr is nil;
// otherwise retried at next, or dead-lettered when next is zero.
func (db *DB) FinishAttempt(ctx context.Context, id int64, now time.Time, attemptErr error, next time.Time) error {
	var err error
	switch {
	case attemptErr == nil:
		_, err = db.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, last_error = NULL WHERE id = $1`, id, now)
	case next.IsZero():
		_, err = db.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, attemptErr.Error())
	default:
		_, err = db.pool.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE id = $1`, id, attemptErr.Error(), next)
	}
	if err != nil {
		return fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	return nil
}

// DeliveryStatus is a webhook delivery's outcome, for operators and tests.
type DeliveryStatus struct {
	Delivery  string
	StoreID   string
	Status    string
	Attempts  int
	LastError string
}

// Deliveries lists a store's webhook deliveries, oldest first.
func (db *DB) Deliveries(ctx context.Context, storeID string) ([]DeliveryStatus, error) {
	rows, err := db.pool.Query(ctx, `SELECT delivery_id, store_id, status, attempts, COALESCE(last_error, '') FROM webhook_deliveries WHERE store_id = $1 ORDER BY id`, storeID)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: %v", engine.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []DeliveryStatus
	for rows.Next() {
		var d DeliveryStatus
		if err := rows.Scan(&d.Delivery, &d.StoreID, &d.Status, &d.Attempts, &d.LastError); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
