package reservation

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/engine"
)

var (
	//go:embed lua/lib.lua
	libLua string
	//go:embed lua/create_sale.lua
	createSaleLua string
	//go:embed lua/reserve.lua
	reserveLua string
	//go:embed lua/confirm.lua
	confirmLua string
	//go:embed lua/cancel.lua
	cancelLua string
	//go:embed lua/expire.lua
	expireLua string
)

// script is one Lua script with the name metrics and logs know it by, its
// source and the source's SHA1 (commands hand both to go-redis by
// pointer).
type script struct {
	name, src, sha string
}

func newScript(name, src string) script {
	sum := sha1.Sum([]byte(src))
	return script{name: name, src: src, sha: hex.EncodeToString(sum[:])}
}

// ScriptObserver is told the duration and error of every script call.
type ScriptObserver func(script string, d time.Duration, err error)

// Ledger is the Redis implementation of engine.Ledger. It is safe for
// concurrent use.
type Ledger struct {
	rdb     redis.UniversalClient
	ns      string
	observe ScriptObserver

	createSale, reserve, confirm, cancel, expire script
}

var _ engine.Ledger = (*Ledger)(nil)

// Option configures a Ledger.
type Option func(*Ledger)

// WithNamespace sets the prefix of the keys that list stores and sales
// ("flashsale" by default). Sale keys are fixed by the key schema.
func WithNamespace(ns string) Option { return func(l *Ledger) { l.ns = ns } }

// WithScriptObserver sets a function told about every script call.
func WithScriptObserver(o ScriptObserver) Option { return func(l *Ledger) { l.observe = o } }

// New returns a Ledger over a Redis client (a single node, or a cluster
// client). Call Load before serving traffic.
func New(rdb redis.UniversalClient, opts ...Option) *Ledger {
	l := &Ledger{
		rdb:        rdb,
		ns:         "flashsale",
		createSale: newScript("create_sale", createSaleLua),
		reserve:    newScript("reserve", reserveLua),
		confirm:    newScript("confirm", libLua+confirmLua),
		cancel:     newScript("cancel", libLua+cancelLua),
		expire:     newScript("expire", libLua+expireLua),
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

func (l *Ledger) scripts() []script {
	return []script{l.createSale, l.reserve, l.confirm, l.cancel, l.expire}
}

// Load loads every script into Redis (into every master of a cluster), so
// that calls by SHA succeed from the first request. It returns an error
// wrapping engine.ErrUnavailable when Redis does not answer.
func (l *Ledger) Load(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Scripter) error {
		for _, s := range l.scripts() {
			if err := c.ScriptLoad(ctx, s.src).Err(); err != nil {
				return fmt.Errorf("%w: load script %s: %v", engine.ErrUnavailable, s.name, err)
			}
		}
		return nil
	}
	if c, ok := l.rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	}
	return load(ctx, l.rdb)
}

// Ping checks that Redis answers.
func (l *Ledger) Ping(ctx context.Context) error {
	if err := l.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis: %v", engine.ErrUnavailable, err)
	}
	return nil
}

// keySuffixes name the six keys of a sale, "{s:<sale>}:<suffix>", in the
// order every script takes them.
var keySuffixes = [6]string{"meta", "stock", "buyers", "holds", "expiry", "outbox"}

// keys returns the six keys of a sale in the order every script expects.
func keys(saleID string) []string {
	p := "{s:" + saleID + "}:"
	k := make([]string, len(keySuffixes))
	for i, sfx := range keySuffixes {
		k[i] = p + sfx
	}
	return k
}

// SaleKeys returns every key of a sale: meta, stock, buyers, holds, expiry
// and outbox, in the order the scripts take them.
func SaleKeys(saleID string) []string { return keys(saleID) }

// OutboxKey is the stream a sale's hold events are appended to.
func OutboxKey(saleID string) string { return "{s:" + saleID + "}:outbox" }

func (l *Ledger) storesKey() string { return l.ns + ":stores" }
func (l *Ledger) salesKey() string  { return l.ns + ":sales" }

// run calls script s with keys and args.
func (l *Ledger) run(ctx context.Context, s *script, keys []string, args ...any) (any, error) {
	all := make([]any, 3, 3+len(keys)+len(args))
	all[2] = len(keys)
	for _, k := range keys {
		all = append(all, k)
	}
	return l.call(ctx, s, scriptCmd(ctx, s, true, append(all, args...)))
}

// call runs cmd, an EVALSHA of s, and sends it again as an EVAL when
// Redis answers NOSCRIPT (after a restart or failover), which it did not
// run; it reports the call to the observer.
func (l *Ledger) call(ctx context.Context, s *script, cmd *redis.Cmd) (any, error) {
	start := time.Now()
	_ = l.rdb.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = resend(ctx, cmd, s)
		_ = l.rdb.Process(ctx, cmd)
	}
	v, err := cmd.Result()
	if l.observe != nil {
		l.observe(s.name, time.Since(start), err)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return v, nil
}

// scriptCmd makes args the EVALSHA (byHash) or EVAL of s: it fills
// args[0] and args[1]; args[2] is the number of keys, which follow it,
// and then the script's arguments.
func scriptCmd(ctx context.Context, s *script, byHash bool, args []any) *redis.Cmd {
	if byHash {
		args[0], args[1] = "evalsha", &s.sha
	} else {
		args[0], args[1] = "eval", &s.src
	}
	cmd := redis.NewCmd(ctx, args...)
	if n, _ := args[2].(int); n > 0 {
		cmd.SetFirstKeyPos(3) // a cluster client routes by the first key
	}
	return cmd
}

// resend is cmd, which Redis answered NOSCRIPT, as an EVAL of s: the same
// keys and arguments, with the script's source. cmd keeps its own.
func resend(ctx context.Context, cmd *redis.Cmd, s *script) *redis.Cmd {
	return scriptCmd(ctx, s, false, slices.Clone(cmd.Args()))
}

func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: redis: %v", engine.ErrUnavailable, err)
}

// UpsertStores saves stores in the namespace's store hash.
func (l *Ledger) UpsertStores(ctx context.Context, stores []engine.Store) error {
	vals := make([]any, 0, 2*len(stores))
	for _, s := range stores {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		vals = append(vals, s.ID, string(b))
	}
	if err := l.rdb.HSet(ctx, l.storesKey(), vals...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Stores returns every saved store, in no particular order.
func (l *Ledger) Stores(ctx context.Context) ([]engine.Store, error) {
	m, err := l.rdb.HGetAll(ctx, l.storesKey()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]engine.Store, 0, len(m))
	for id, v := range m {
		var s engine.Store
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return nil, fmt.Errorf("decode store %q: %w", id, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// CreateSale saves a sale and its initial stock; engine.ErrSaleExists when
// the id is taken.
func (l *Ledger) CreateSale(ctx context.Context, s engine.Sale) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	// List the sale first: a listed id without a sale is skipped by readers,
	// a sale that is not listed would never be swept.
	if err := l.rdb.SAdd(ctx, l.salesKey(), s.ID).Err(); err != nil {
		return unavailable(err)
	}
	args := []any{s.StartsAt.UnixMilli(), s.EndsAt.UnixMilli(), s.PerUserLimit, s.HoldTTL().Milliseconds(),
		string(b), s.Total(), len(s.Allocations)}
	for id, q := range s.Allocations {
		args = append(args, id, q)
	}
	v, err := l.run(ctx, &l.createSale, keys(s.ID)[:3], args...)
	if err != nil {
		return err
	}
	if v == "exists" {
		return fmt.Errorf("sale %q: %w", s.ID, engine.ErrSaleExists)
	}
	return nil
}

// Sale loads a sale; engine.ErrUnknownSale when there is none.
func (l *Ledger) Sale(ctx context.Context, id string) (engine.Sale, error) {
	v, err := l.rdb.HGet(ctx, keys(id)[0], "json").Result()
	if errors.Is(err, redis.Nil) {
		return engine.Sale{}, fmt.Errorf("sale %q: %w", id, engine.ErrUnknownSale)
	}
	if err != nil {
		return engine.Sale{}, unavailable(err)
	}
	var s engine.Sale
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return engine.Sale{}, fmt.Errorf("decode sale %q: %w", id, err)
	}
	return s, nil
}

// SaleIDs lists every sale id.
func (l *Ledger) SaleIDs(ctx context.Context) ([]string, error) {
	ids, err := l.rdb.SMembers(ctx, l.salesKey()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return ids, nil
}

var reserveErrors = map[string]error{
	"not_started":    engine.ErrNotStarted,
	"ended":          engine.ErrEnded,
	"limit_reached":  engine.ErrLimitReached,
	"sold_out":       engine.ErrSoldOut,
	"no_store_stock": engine.ErrNoStoreStock,
	"unknown_sale":   engine.ErrUnknownSale,
}

// shopperRepeats reports whether a shopper has more than one request in
// reqs: only then does the reserve script keep per-shopper tables.
func shopperRepeats(reqs []engine.LedgerReserve) bool {
	seen := make(map[string]struct{}, len(reqs))
	for _, r := range reqs {
		if _, ok := seen[r.UserID]; ok {
			return true
		}
		seen[r.UserID] = struct{}{}
	}
	return false
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Reserve runs a batch of reservations of one sale in one script call.
func (l *Ledger) Reserve(ctx context.Context, saleID string, now time.Time, reqs []engine.LedgerReserve) ([]engine.LedgerOutcome, error) {
	v, err := l.call(ctx, &l.reserve, l.reserveCmd(ctx, saleID, now, reqs))
	if err != nil {
		return nil, err
	}
	return reserveOutcomes(saleID, now, reqs, v)
}

// ReserveBatches runs the batches of several sales, a script call each, in
// one pipeline: one round trip, and on Redis one read and one write for
// them all. (A cluster client sends each node its share.) Every batch is
// answered on its own; a script Redis no longer knows (NOSCRIPT, after a
// restart or failover) is sent again by its source for the batches it
// failed, which it did not run.
func (l *Ledger) ReserveBatches(ctx context.Context, now time.Time, batches []engine.SaleBatch) {
	if len(batches) == 1 {
		b := &batches[0]
		b.Outs, b.Err = l.Reserve(ctx, b.SaleID, now, b.Reqs)
		return
	}
	start := time.Now()
	cmds := make([]*redis.Cmd, len(batches))
	pipe := l.rdb.Pipeline()
	for i, b := range batches {
		cmds[i] = l.reserveCmd(ctx, b.SaleID, now, b.Reqs)
		_ = pipe.Process(ctx, cmds[i])
	}
	_, _ = pipe.Exec(ctx) // every command carries its own error
	var again redis.Pipeliner
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if again == nil {
				again = l.rdb.Pipeline()
			}
			cmds[i] = resend(ctx, cmd, &l.reserve)
			_ = again.Process(ctx, cmds[i])
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
	d := time.Since(start)
	for i, cmd := range cmds {
		b := &batches[i]
		v, err := cmd.Result()
		if l.observe != nil {
			l.observe(l.reserve.name, d, err)
		}
		if err != nil {
			b.Err = unavailable(err)
			continue
		}
		b.Outs, b.Err = reserveOutcomes(b.SaleID, now, b.Reqs, v)
	}
}

// reserveCmd is the EVALSHA of reserve.lua for a batch of reservations of
// one sale. Its arguments are strings of one arena, handed to go-redis by
// pointer: a string put in an interface is copied to the heap, a pointer is
// not, and a batch has seven arguments per reservation.
func (l *Ledger) reserveCmd(ctx context.Context, saleID string, now time.Time, reqs []engine.LedgerReserve) *redis.Cmd {
	strs := reserveArgs(saleID, now, reqs)
	args := make([]any, 3+len(strs))
	args[2] = len(keySuffixes)
	for i := range strs {
		args[3+i] = &strs[i]
	}
	return scriptCmd(ctx, &l.reserve, true, args)
}

// reserveArgs are the sale's six keys and then reserve.lua's arguments for
// a batch of reservations, as strings. The keys, every request's
// idempotency entry, nearest store (as its counter field), its distance
// and the other candidates, and the batch's hold ids are written into one
// buffer and made into one string, of which they are slices.
func reserveArgs(saleID string, now time.Time, reqs []engine.LedgerReserve) []string {
	size := 6 * (len(saleID) + 12)
	for _, r := range reqs {
		size += 25 + 2*len(r.UserID) + len(r.Key) + len(r.HoldID) + 16*len(r.Candidates)
		for _, c := range r.Candidates {
			size += len(c.StoreID)
		}
	}
	buf := make([]byte, 0, size)
	ends := make([]int, 0, 6+4*len(reqs))
	for _, k := range keySuffixes {
		buf = append(buf, "{s:"...)
		buf = append(buf, saleID...)
		buf = append(buf, "}:"...)
		buf = append(buf, k...)
		ends = append(ends, len(buf))
	}
	for _, r := range reqs {
		buf = append(buf, "r:"...)
		buf = strconv.AppendInt(buf, int64(len(r.UserID)), 10)
		buf = append(buf, ':')
		buf = append(buf, r.UserID...)
		buf = append(buf, ':')
		buf = append(buf, r.Key...)
		ends = append(ends, len(buf))
		if len(r.Candidates) > 0 {
			buf = append(buf, "r:"...)
			buf = append(buf, r.Candidates[0].StoreID...)
		}
		ends = append(ends, len(buf))
		if len(r.Candidates) > 0 {
			buf = appendKm(buf, r.Candidates[0].DistanceKm)
		}
		ends = append(ends, len(buf))
		for i, c := range r.Candidates[min(1, len(r.Candidates)):] {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = append(buf, "r:"...)
			buf = append(buf, c.StoreID...)
			buf = append(buf, ' ')
			buf = appendKm(buf, c.DistanceKm)
		}
		ends = append(ends, len(buf))
	}
	idsFrom := len(buf)
	for i, r := range reqs {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, r.HoldID...)
	}
	// buf is not written again: the string can be its bytes.
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	strs := make([]string, 0, 6+4+7*len(reqs))
	from := 0
	for _, e := range ends[:6] {
		strs = append(strs, all[from:e])
		from = e
	}
	strs = append(strs, strconv.FormatInt(now.UnixMilli(), 10), strconv.Itoa(len(reqs)))
	for i, r := range reqs {
		e := ends[6+4*i : 6+4*i+4]
		strs = append(strs, r.HoldID, r.UserID, all[from:e[0]], strconv.Itoa(r.Quantity), all[e[0]:e[1]], all[e[1]:e[2]], all[e[2]:e[3]])
		from = e[3]
	}
	return append(strs, all[idsFrom:], boolArg(shopperRepeats(reqs)))
}

// reserveOutcomes reads reserve.lua's answer v to a batch of reservations.
func reserveOutcomes(saleID string, now time.Time, reqs []engine.LedgerReserve, v any) ([]engine.LedgerOutcome, error) {
	rows, ok := v.([]any)
	if !ok || len(rows) != len(reqs)+1 {
		return nil, fmt.Errorf("%w: reserve script answered %T of %d for %d requests", engine.ErrUnavailable, v, len(rows), len(reqs))
	}
	es, _ := rows[len(reqs)].(string)
	expires, err := strconv.ParseInt(es, 10, 64)
	if _, none := rows[len(reqs)].(int64); none {
		expires, err = 0, nil // nothing was created
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reserve script answered expiry %v", engine.ErrUnavailable, rows[len(reqs)])
	}
	out := make([]engine.LedgerOutcome, len(reqs))
	for i, row := range rows[:len(reqs)] {
		switch row := row.(type) {
		case int64:
			h, err := createdHold(saleID, now, expires, reqs[i], int(row))
			if err != nil {
				return nil, err
			}
			out[i] = engine.LedgerOutcome{Hold: h}
		case string:
			if strings.HasPrefix(row, "r{") {
				h, err := decodeHold(saleID, row[1:])
				if err != nil {
					return nil, err
				}
				out[i] = engine.LedgerOutcome{Hold: h, Replayed: true}
				continue
			}
			e, ok := reserveErrors[row]
			if !ok {
				return nil, fmt.Errorf("%w: reserve script answered %q", engine.ErrUnavailable, row)
			}
			out[i].Err = e
		default:
			return nil, fmt.Errorf("%w: reserve script answered %v", engine.ErrUnavailable, row)
		}
	}
	return out, nil
}

// createdHold builds the hold the script created for request r at its k-th
// candidate store (from 1). The distance is the one the script stored: the
// candidate's, to the metre.
func createdHold(saleID string, now time.Time, expiresMs int64, r engine.LedgerReserve, k int) (engine.Hold, error) {
	if k < 1 || k > len(r.Candidates) {
		return engine.Hold{}, fmt.Errorf("%w: reserve script answered candidate %d of %d", engine.ErrUnavailable, k, len(r.Candidates))
	}
	c := r.Candidates[k-1]
	dist := roundKm(c.DistanceKm)
	at := time.UnixMilli(now.UnixMilli()).UTC()
	return engine.Hold{
		ID: r.HoldID, SaleID: saleID, StoreID: c.StoreID, UserID: r.UserID, Quantity: r.Quantity, DistanceKm: dist,
		State: engine.HoldHeld, CreatedAt: at, ExpiresAt: time.UnixMilli(expiresMs).UTC(), UpdatedAt: at,
	}, nil
}

// pair reads a {code, record} reply row.
func pair(v any) (string, string, error) {
	row, ok := v.([]any)
	if !ok || len(row) != 2 {
		return "", "", fmt.Errorf("%w: unexpected script reply %v", engine.ErrUnavailable, v)
	}
	code, _ := row[0].(string)
	rec, _ := row[1].(string)
	return code, rec, nil
}

var transitionErrors = map[string]error{
	"unknown_hold": engine.ErrUnknownHold,
	"forbidden":    engine.ErrForbidden,
	"cancelled":    engine.ErrHoldCancelled,
	"expired":      engine.ErrHoldExpired,
	"confirmed":    engine.ErrHoldConfirmed,
}

func (l *Ledger) transition(ctx context.Context, s *script, saleID, holdID string, who engine.Actor, now time.Time) (engine.Hold, error) {
	v, err := l.run(ctx, s, keys(saleID), holdID, now.UnixMilli(), who.UserID, who.StoreID)
	if err != nil {
		return engine.Hold{}, err
	}
	code, rec, err := pair(v)
	if err != nil {
		return engine.Hold{}, err
	}
	var h engine.Hold
	if rec != "" {
		if h, err = decodeHold(saleID, rec); err != nil {
			return engine.Hold{}, err
		}
	}
	if code == "ok" {
		return h, nil
	}
	e, ok := transitionErrors[code]
	if !ok {
		return engine.Hold{}, fmt.Errorf("%w: %s script answered %q", engine.ErrUnavailable, s.name, code)
	}
	return h, fmt.Errorf("hold %q: %w", holdID, e)
}

// Confirm confirms a held hold; see engine.Ledger.
func (l *Ledger) Confirm(ctx context.Context, saleID, holdID string, who engine.Actor, now time.Time) (engine.Hold, error) {
	return l.transition(ctx, &l.confirm, saleID, holdID, who, now)
}

// Cancel cancels a held hold; see engine.Ledger.
func (l *Ledger) Cancel(ctx context.Context, saleID, holdID string, who engine.Actor, now time.Time) (engine.Hold, error) {
	return l.transition(ctx, &l.cancel, saleID, holdID, who, now)
}

// ExpireDue expires the holds of a sale whose time ran out by now, looking
// at about max of them; more reports that due ones may remain.
func (l *Ledger) ExpireDue(ctx context.Context, saleID string, now time.Time, max int) ([]engine.Hold, bool, error) {
	v, err := l.run(ctx, &l.expire, keys(saleID), now.UnixMilli(), max)
	if err != nil {
		return nil, false, err
	}
	reply, ok := v.([]any)
	if !ok || len(reply) == 0 {
		return nil, false, fmt.Errorf("%w: expire script answered %v", engine.ErrUnavailable, v)
	}
	more, ok := reply[0].(int64)
	if !ok {
		return nil, false, fmt.Errorf("%w: expire script answered %v", engine.ErrUnavailable, reply[0])
	}
	out := make([]engine.Hold, 0, len(reply)-1)
	for _, r := range reply[1:] {
		s, _ := r.(string)
		h, err := decodeHold(saleID, s)
		if err != nil {
			return out, more == 1, err
		}
		out = append(out, h)
	}
	return out, more == 1, nil
}

// Hold loads one hold; engine.ErrUnknownHold when there is none.
func (l *Ledger) Hold(ctx context.Context, saleID, holdID string) (engine.Hold, error) {
	rec, err := l.rdb.HGet(ctx, keys(saleID)[3], holdID).Result()
	if errors.Is(err, redis.Nil) || strings.HasPrefix(holdID, "r:") {
		return engine.Hold{}, fmt.Errorf("hold %q: %w", holdID, engine.ErrUnknownHold)
	}
	if err != nil {
		return engine.Hold{}, unavailable(err)
	}
	return decodeHold(saleID, rec)
}

// Holds returns every hold of a sale.
func (l *Ledger) Holds(ctx context.Context, saleID string) ([]engine.Hold, error) {
	var out []engine.Hold
	key := keys(saleID)[3]
	var cursor uint64
	for {
		kv, next, err := l.rdb.HScan(ctx, key, cursor, "*", 500).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if strings.HasPrefix(kv[i], "r:") || strings.HasPrefix(kv[i], "x:") {
				continue // an idempotency entry or a batch's expiry list
			}
			h, err := decodeHold(saleID, kv[i+1])
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// Stock reads a sale's counts in one snapshot; engine.ErrUnknownSale when
// there is none.
func (l *Ledger) Stock(ctx context.Context, saleID string) (engine.Stock, error) {
	k := keys(saleID)
	var meta, stock *redis.MapStringStringCmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGetAll(ctx, k[0])
		stock = p.HGetAll(ctx, k[1])
		return nil
	})
	if err != nil {
		return engine.Stock{}, unavailable(err)
	}
	m, s := meta.Val(), stock.Val()
	if len(m) == 0 {
		return engine.Stock{}, fmt.Errorf("sale %q: %w", saleID, engine.ErrUnknownSale)
	}
	num := func(m map[string]string, f string) int { n, _ := strconv.Atoi(m[f]); return n }
	// Held units are not counted but derived: the scripts keep what is
	// left and what is confirmed (see create_sale.lua).
	st := engine.Stock{
		Initial:   num(m, "initial"),
		Remaining: num(s, "g"),
		Confirmed: num(s, "gc"),
		Stores:    map[string]engine.StoreStock{},
	}
	st.Held = st.Initial - st.Remaining - st.Confirmed
	for f := range m {
		if id, ok := strings.CutPrefix(f, "i:"); ok {
			ss := engine.StoreStock{
				StoreID:   id,
				Initial:   num(m, f),
				Remaining: num(s, "r:"+id),
				Confirmed: num(s, "c:"+id),
			}
			ss.Held = ss.Initial - ss.Remaining - ss.Confirmed
			st.Stores[id] = ss
		}
	}
	return st, nil
}

// record is a hold as the scripts store it.
type record struct {
	ID      string `json:"id"`
	User    string `json:"user"`
	Store   string `json:"store"`
	Qty     int    `json:"qty"`
	Dist    string `json:"dist"`
	State   string `json:"state"`
	Created string `json:"created"`
	Expires string `json:"expires"`
	Updated string `json:"updated"`
}

func decodeHold(saleID, rec string) (engine.Hold, error) {
	var r record
	if err := json.Unmarshal([]byte(rec), &r); err != nil {
		return engine.Hold{}, fmt.Errorf("decode hold of sale %q: %w", saleID, err)
	}
	ms := func(s string) time.Time {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.UnixMilli(n).UTC()
	}
	dist, _ := strconv.ParseFloat(r.Dist, 64)
	return engine.Hold{
		ID:         r.ID,
		SaleID:     saleID,
		StoreID:    r.Store,
		UserID:     r.User,
		Quantity:   r.Qty,
		DistanceKm: dist,
		State:      engine.HoldState(r.State),
		CreatedAt:  ms(r.Created),
		ExpiresAt:  ms(r.Expires),
		UpdatedAt:  ms(r.Updated),
	}, nil
}
