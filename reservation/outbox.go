package reservation

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/engine"
)

// Outbox reads the sales' outbox streams through a Redis consumer group. It
// implements engine.Outbox and is safe for concurrent use.
type Outbox struct {
	rdb       redis.UniversalClient
	group     string
	claimIdle time.Duration

	mu        sync.Mutex
	groups    map[string]bool
	lastClaim map[string]time.Time
}

var _ engine.Outbox = (*Outbox)(nil)

// NewOutbox returns an Outbox reading as consumer group "relay". Entries a
// consumer left pending for longer than claimIdle (30 s when 0) are claimed
// by another.
func NewOutbox(rdb redis.UniversalClient, claimIdle time.Duration) *Outbox {
	if claimIdle <= 0 {
		claimIdle = 30 * time.Second
	}
	return &Outbox{rdb: rdb, group: "relay", claimIdle: claimIdle, groups: map[string]bool{}, lastClaim: map[string]time.Time{}}
}

func (o *Outbox) ensureGroup(ctx context.Context, key string) error {
	o.mu.Lock()
	ok := o.groups[key]
	o.mu.Unlock()
	if ok {
		return nil
	}
	// From id 0: events appended before the group existed are relayed too.
	err := o.rdb.XGroupCreateMkStream(ctx, key, o.group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return unavailable(err)
	}
	o.mu.Lock()
	o.groups[key] = true
	o.mu.Unlock()
	return nil
}

// Read returns the events of up to max unacknowledged stream entries for
// consumer: its own pending entries first, then entries idle too long at
// other consumers, then new ones. An entry holds one event, or every
// creation of one reserve batch: its events share its Ref.
func (o *Outbox) Read(ctx context.Context, saleID, consumer string, max int) ([]engine.OutboxEntry, error) {
	key := OutboxKey(saleID)
	if err := o.ensureGroup(ctx, key); err != nil {
		return nil, err
	}
	read := func(id string) ([]redis.XMessage, error) {
		res, err := o.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: o.group, Consumer: consumer, Streams: []string{key, id}, Count: int64(max), Block: -1,
		}).Result()
		if err == redis.Nil {
			return nil, nil
		}
		if err != nil {
			if redis.HasErrorPrefix(err, "NOGROUP") {
				o.mu.Lock()
				delete(o.groups, key)
				o.mu.Unlock()
			}
			return nil, unavailable(err)
		}
		if len(res) == 0 {
			return nil, nil
		}
		return res[0].Messages, nil
	}
	msgs, err := read("0")
	if err != nil || len(msgs) > 0 {
		return o.entries(saleID, msgs, err)
	}
	o.mu.Lock()
	claim := time.Since(o.lastClaim[key]) > o.claimIdle/2
	if claim {
		o.lastClaim[key] = time.Now()
	}
	o.mu.Unlock()
	if claim {
		msgs, _, err := o.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: o.group, Consumer: consumer, MinIdle: o.claimIdle, Start: "0-0", Count: int64(max),
		}).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		if len(msgs) > 0 {
			return o.entries(saleID, msgs, nil)
		}
	}
	msgs, err = read(">")
	return o.entries(saleID, msgs, err)
}

func (o *Outbox) entries(saleID string, msgs []redis.XMessage, err error) ([]engine.OutboxEntry, error) {
	if err != nil {
		return nil, err
	}
	out := make([]engine.OutboxEntry, 0, len(msgs))
	for _, m := range msgs {
		evs, err := OutboxEvents(saleID, m.Values)
		if err != nil {
			return nil, fmt.Errorf("outbox entry %s of sale %q: %w", m.ID, saleID, err)
		}
		for _, ev := range evs {
			out = append(out, engine.OutboxEntry{Ref: m.ID, Event: ev})
		}
	}
	return out, nil
}

// OutboxEvents turns the fields of one outbox stream entry into its
// events: a single transition ("id", "type", "at", "hold"), or the
// creations of one reserve batch ("type", "at", "holds": one record per
// line), each with the id "<hold id>:held".
func OutboxEvents(saleID string, v map[string]any) ([]engine.Event, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	ms, _ := strconv.ParseInt(str("at"), 10, 64)
	event := func(id, rec string) (engine.Event, error) {
		h, err := decodeHold(saleID, rec)
		if err != nil {
			return engine.Event{}, err
		}
		if id == "" {
			id = h.ID + ":" + string(h.State)
		}
		return engine.Event{
			Schema:     engine.EventSchema,
			ID:         id,
			Type:       str("type"),
			SaleID:     saleID,
			StoreID:    h.StoreID,
			OccurredAt: time.UnixMilli(ms).UTC(),
			Hold:       h,
		}, nil
	}
	recs, batch := v["holds"].(string)
	if !batch {
		ev, err := event(str("id"), str("hold"))
		if err != nil {
			return nil, err
		}
		return []engine.Event{ev}, nil
	}
	out := make([]engine.Event, 0, strings.Count(recs, "\n")+1)
	for rec := range strings.SplitSeq(recs, "\n") {
		ev, err := event("", rec)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// Ack acknowledges entries and deletes them from the stream.
func (o *Outbox) Ack(ctx context.Context, saleID string, entries []engine.OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	key := OutboxKey(saleID)
	ids := make([]string, 0, len(entries))
	for i, e := range entries {
		if i == 0 || e.Ref != entries[i-1].Ref { // a batch's events share their entry
			ids = append(ids, e.Ref)
		}
	}
	_, err := o.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, key, o.group, ids...)
		p.XDel(ctx, key, ids...)
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Len returns how many entries of a sale wait in its outbox: one per
// transition, or one per reserve batch for creations.
func (o *Outbox) Len(ctx context.Context, saleID string) (int64, error) {
	n, err := o.rdb.XLen(ctx, OutboxKey(saleID)).Result()
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}
