package persist

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/flashsale/flashsale/engine"
)

// Webhook headers. The signature is "sha256=" and the hex HMAC-SHA256 of
// the exact request body keyed by the store's webhook secret; the delivery
// id is stable across retries, so receivers can drop repeats.
const (
	SignatureHeader = "X-Flashsale-Signature"
	DeliveryHeader  = "X-Flashsale-Delivery"
	EventHeader     = "X-Flashsale-Event"
)

// Sign returns the signature header value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in constant
// time. Receivers call it before trusting a webhook.
func Verify(secret string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// WebhookWorker delivers queued webhooks with exponential backoff and
// dead-letters them after the last attempt.
type WebhookWorker struct {
	DB *DB
	// Secret returns a store's webhook secret.
	Secret func(storeID string) string
	// Client sends the requests; a client with a 5 s timeout by default.
	Client *http.Client
	// MaxAttempts before a delivery is dead-lettered; 8 by default.
	MaxAttempts int
	// Backoff is the wait after the first failure, doubled after each
	// further one (capped at an hour); 1 s by default.
	Backoff time.Duration
	Clock   engine.Clock
	Logger  *slog.Logger
	// OnAttempt, when set, is told each attempt's outcome.
	OnAttempt func(ok bool)
}

func (w *WebhookWorker) defaults() {
	if w.Client == nil {
		w.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = 8
	}
	if w.Backoff <= 0 {
		w.Backoff = time.Second
	}
	if w.Clock == nil {
		w.Clock = engine.SystemClock{}
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
}

// RunOnce attempts every delivery that is due and returns how many it
// attempted.
func (w *WebhookWorker) RunOnce(ctx context.Context) (int, error) {
	w.defaults()
	now := w.Clock.Now()
	ds, err := w.DB.ClaimDeliveries(ctx, now, time.Minute, 100)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		err := w.attempt(ctx, d)
		if w.OnAttempt != nil {
			w.OnAttempt(err == nil)
		}
		var next time.Time
		if err != nil {
			if d.Attempts+1 < w.MaxAttempts {
				next = w.Clock.Now().Add(min(w.Backoff<<d.Attempts, time.Hour))
			} else {
				w.Logger.Warn("webhook dead-lettered", "delivery", d.Delivery, "store", d.StoreID, "err", err)
			}
		}
		if ferr := w.DB.FinishAttempt(ctx, d.ID, w.Clock.Now(), err, next); ferr != nil {
			return len(ds), ferr
		}
	}
	return len(ds), nil
}

func (w *WebhookWorker) attempt(ctx context.Context, d Delivery) error {
	body := []byte(d.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flashsale-webhook/1")
	req.Header.Set(SignatureHeader, Sign(w.Secret(d.StoreID), body))
	req.Header.Set(DeliveryHeader, d.Delivery)
	req.Header.Set(EventHeader, d.Type)
	resp, err := w.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("receiver answered " + resp.Status)
	}
	return nil
}

// Run delivers until ctx is done, looking for due deliveries every
// interval.
func (w *WebhookWorker) Run(ctx context.Context, interval time.Duration) {
	w.defaults()
	for ctx.Err() == nil {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.Logger.Warn("webhook pass failed", "err", err)
		}
		if n == 0 || err != nil {
			pause(ctx, interval)
		}
	}
}
