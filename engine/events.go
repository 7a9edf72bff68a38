package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// EventSchema names the version of the hold event format. A consumer that
// meets an unknown schema stops rather than guessing.
const EventSchema = "flashsale.hold.v1"

// The event types of a hold's life.
const (
	EventCreated   = "hold.created"
	EventConfirmed = "hold.confirmed"
	EventCancelled = "hold.cancelled"
	EventExpired   = "hold.expired"
)

// Event is one transition of a hold, as it travels from the sale's outbox
// through Kafka to the orders table and the store.
type Event struct {
	Schema string `json:"schema"`
	// ID is stable across redeliveries: "<hold id>:<state>". Consumers drop
	// an event whose id they have seen.
	ID         string    `json:"event_id"`
	Type       string    `json:"type"`
	SaleID     string    `json:"sale_id"`
	StoreID    string    `json:"store_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Hold       Hold      `json:"hold"`
}

// Rank orders hold states so that consumers apply transitions
// monotonically: a late "created" never overwrites a final state.
func (s HoldState) Rank() int {
	if s == HoldHeld {
		return 1
	}
	return 2
}

// EncodeEvent returns the event's JSON.
func EncodeEvent(e Event) ([]byte, error) { return json.Marshal(e) }

// DecodeEvent parses an event's JSON. It returns an error wrapping
// ErrInvalid for malformed JSON, an unknown schema or a missing id.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: event: %v", ErrInvalid, err)
	}
	if e.Schema != EventSchema {
		return Event{}, fmt.Errorf("%w: event schema %q, want %q", ErrInvalid, e.Schema, EventSchema)
	}
	if e.ID == "" || e.Hold.ID == "" || !strings.HasPrefix(e.Type, "hold.") {
		return Event{}, fmt.Errorf("%w: event without id, hold or type", ErrInvalid)
	}
	return e, nil
}

// OutboxEntry is an event read from a sale's outbox, with the reference the
// outbox needs to acknowledge it.
type OutboxEntry struct {
	Ref   string
	Event Event
}

// Outbox is the durable log of hold events each sale's scripts append to.
// Entries are read by a named consumer and stay pending until acknowledged;
// the pending entries of a consumer that died are handed to another.
type Outbox interface {
	// Read returns the events of up to max unacknowledged entries of a sale
	// for consumer: first its own pending ones (after a restart), then
	// those of consumers idle for too long, then new ones. One entry may
	// carry several events (a batch of creations); they share its Ref and
	// are acknowledged together.
	Read(ctx context.Context, saleID, consumer string, max int) ([]OutboxEntry, error)
	// Ack acknowledges entries and removes them from the outbox.
	Ack(ctx context.Context, saleID string, entries []OutboxEntry) error
	// Len returns how many entries of a sale are not yet acknowledged.
	Len(ctx context.Context, saleID string) (int64, error)
}

// Publisher hands events to durable storage (Kafka) and returns only once
// it has acknowledged every one of them.
type Publisher interface {
	Publish(ctx context.Context, events []Event) error
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	Outbox    Outbox
	Publisher Publisher
	// Sales lists the sales whose outboxes to relay.
	Sales func(ctx context.Context) ([]string, error)
	// Consumer names this relay in the outbox's consumer group; keep it
	// stable across restarts so its pending entries are picked up at once.
	Consumer string
	// Batch is the most entries read from one sale at a time; 500 by
	// default.
	Batch int
	// Idle is how long the relay waits when every outbox is empty; 10 ms by
	// default.
	Idle time.Duration
	// OnBatch, when set, is told the size, duration and error of every
	// publish.
	OnBatch func(n int, d time.Duration, err error)
}

// Relay moves events from sale outboxes to a Publisher, at least once:
// an entry is acknowledged only after the publisher acknowledged it.
type Relay struct {
	cfg RelayConfig
}

// NewRelay returns a Relay, or an error when the config is incomplete.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Outbox == nil || cfg.Publisher == nil || cfg.Sales == nil || cfg.Consumer == "" {
		return nil, errors.New("relay: config needs Outbox, Publisher, Sales and Consumer")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 10 * time.Millisecond
	}
	return &Relay{cfg: cfg}, nil
}

// RelayOnce relays what the outboxes hold now, batch by batch, and returns
// how many events it published. A failed publish is retried with backoff
// until it succeeds or ctx is done; nothing is acknowledged before. A sale
// whose outbox cannot be read or acknowledged is left for the next call
// and does not hold up the others: their events are relayed, and the
// errors are returned together.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	sales, err := r.cfg.Sales(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
sales:
	for _, id := range sales {
		for {
			entries, err := r.cfg.Outbox.Read(ctx, id, r.cfg.Consumer, r.cfg.Batch)
			if err != nil {
				errs = append(errs, fmt.Errorf("read outbox of sale %q: %w", id, err))
				continue sales
			}
			if len(entries) == 0 {
				break
			}
			if err := r.publish(ctx, entries); err != nil {
				return total, errors.Join(append(errs, err)...) // ctx is done
			}
			if err := r.cfg.Outbox.Ack(ctx, id, entries); err != nil {
				// Published but not acknowledged: the entries will be
				// published again, and consumers drop the duplicates.
				errs = append(errs, fmt.Errorf("ack outbox of sale %q: %w", id, err))
				continue sales
			}
			total += len(entries)
			if len(entries) < r.cfg.Batch {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

func (r *Relay) publish(ctx context.Context, entries []OutboxEntry) error {
	events := make([]Event, len(entries))
	for i, e := range entries {
		events[i] = e.Event
	}
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := r.cfg.Publisher.Publish(ctx, events)
		if r.cfg.OnBatch != nil {
			r.cfg.OnBatch(len(events), time.Since(start), err)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Run relays until ctx is done. Errors are passed to onErr (which may be
// nil) and retried after a pause.
func (r *Relay) Run(ctx context.Context, onErr func(error)) {
	for ctx.Err() == nil {
		n, err := r.RelayOnce(ctx)
		if err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		wait := r.cfg.Idle
		if err != nil {
			wait = 200 * time.Millisecond
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// ActiveSaleIDs lists the sales whose holds may still change: those not
// past their end by more than the hold TTL and a day's grace.
func (e *Engine) ActiveSaleIDs(ctx context.Context) ([]string, error) {
	ids, err := e.ledger.SaleIDs(ctx)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	out := ids[:0]
	for _, id := range ids {
		s, err := e.sale(ctx, id)
		if errors.Is(err, ErrUnknownSale) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if now.After(s.EndsAt.Add(s.HoldTTL() + sweepGrace)) {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}
