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
		return o.entries(ctx, saleID, msgs, err)
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
			return o.entries(ctx, saleID, msgs, nil)
		}
	}
	msgs, err = read(">")
	return o.entries(ctx, saleID, msgs, err)
}

func (o *Outbox) entries(ctx context.Context, saleID string, msgs []redis.XMessage, err error) ([]engine.OutboxEntry, error) {
	if err != nil {
		return nil, err
	}
	return OutboxEvents(ctx, o.rdb, saleID, msgs)
}

// recordsPerRead is the most hold records OutboxEvents reads with one
// command (a few hundred microseconds of the shard's time).
const recordsPerRead = 1000

// OutboxEvents turns entries of a sale's outbox stream into their events,
// in order. An entry is one transition ("id", "type", "at", "hold": its
// record), or the creations of one reserve batch: "type", "at", "ids",
// the batch's hold ids, and "n", how many of them it created. Their
// records are read from the sale's holds hash, an HMGET per thousand ids;
// ids with no record (requests of the batch that created nothing) are
// passed over, and the entry fails when fewer than n have one. A
// creation's event has the id "<hold id>:held" and the hold as it was
// created, whatever became of it since. Entries written before the "ids"
// form carry the records themselves ("holds": one per line) and are read
// as well.
func OutboxEvents(ctx context.Context, rdb redis.UniversalClient, saleID string, msgs []redis.XMessage) ([]engine.OutboxEntry, error) {
	lists := make([][]string, len(msgs)) // each "ids" entry's hold ids
	var ids []string
	for i, m := range msgs {
		if list, ok := m.Values["ids"].(string); ok {
			lists[i] = strings.Fields(list)
			ids = append(ids, lists[i]...)
		}
	}
	recs := make(map[string]string, len(ids))
	// A read of many big batches lists many ids: they are fetched a slice
	// at a time, one command each, so that the sale's shard serves its
	// reservations in between rather than stall behind one long command.
	for from := 0; from < len(ids); from += recordsPerRead {
		part := ids[from:min(from+recordsPerRead, len(ids))]
		vals, err := rdb.HMGet(ctx, keys(saleID)[3], part...).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		for i, v := range vals {
			if rec, ok := v.(string); ok {
				recs[part[i]] = rec
			}
		}
	}
	out := make([]engine.OutboxEntry, 0, len(msgs)+len(recs))
	for i, m := range msgs {
		evs, err := entryEvents(saleID, m.Values, lists[i], recs)
		if err != nil {
			return nil, fmt.Errorf("outbox entry %s of sale %q: %w", m.ID, saleID, err)
		}
		for _, ev := range evs {
			out = append(out, engine.OutboxEntry{Ref: m.ID, Event: ev})
		}
	}
	return out, nil
}

// entryEvents returns the events of one outbox entry with fields v; for an
// "ids" entry, ids are the hold ids it lists and recs holds their records.
func entryEvents(saleID string, v map[string]any, ids []string, recs map[string]string) ([]engine.Event, error) {
	str := func(k string) string { s, _ := v[k].(string); return s }
	ms, _ := strconv.ParseInt(str("at"), 10, 64)
	event := func(id, rec string, created bool) (engine.Event, error) {
		h, err := decodeHold(saleID, rec)
		if err != nil {
			return engine.Event{}, err
		}
		if created {
			// The record read now may be of a later state; a creation
			// carries the hold as it was made.
			h.State, h.UpdatedAt = engine.HoldHeld, h.CreatedAt
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
	if _, ok := v["ids"]; ok {
		var out []engine.Event
		for _, id := range ids {
			rec, ok := recs[id]
			if !ok {
				continue
			}
			ev, err := event("", rec, true)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		// The entry is written in the same script as the records of the
		// holds it created, n of them (a batch run again after a timeout
		// may list more that have records: the earlier run's, whose events
		// consumers drop as duplicates). Fewer means records were lost.
		n, _ := strconv.Atoi(str("n"))
		if len(out) == 0 || len(out) < n {
			return nil, fmt.Errorf("%w: %d of the %d holds it created have a record", engine.ErrUnavailable, len(out), max(n, 1))
		}
		return out, nil
	}
	if recs, ok := v["holds"].(string); ok {
		out := make([]engine.Event, 0, strings.Count(recs, "\n")+1)
		for rec := range strings.SplitSeq(recs, "\n") {
			ev, err := event("", rec, false)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	}
	ev, err := event(str("id"), str("hold"), false)
	if err != nil {
		return nil, err
	}
	return []engine.Event{ev}, nil
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
