package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/flashsale/flashsale/engine"
)

//go:embed web
var webFS embed.FS

// Check is a named readiness probe, such as a ping of Redis.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config configures a Server. Engine and AdminToken are required.
type Config struct {
	Engine *engine.Engine
	// AdminToken is the bearer token of operator endpoints. Store tokens
	// are derived from it (see StoreToken).
	AdminToken string
	// Metrics records what the server does. Without it, the server makes
	// its own on a registry of its own, which /metrics then serves.
	Metrics *Metrics
	// Gatherer serves /metrics; prometheus.DefaultGatherer by default
	// (the server's own registry when it makes its Metrics).
	Gatherer prometheus.Gatherer
	// Ready lists the probes of /readyz.
	Ready []Check
	// Logger logs 5xx errors; slog.Default() by default.
	Logger *slog.Logger
	// RequestTimeout bounds the work of one request; 5 s by default.
	RequestTimeout time.Duration
	// Stores reads stores' orders and notifications (PostgreSQL). Without
	// it the store endpoints answer 503 unavailable.
	Stores StoreFeed
	// PollInterval is how often a live store stream looks for new events;
	// 250 ms by default.
	PollInterval time.Duration
}

// StoreFeed is what the store endpoints read: the orders table and the
// per-store notification log.
type StoreFeed interface {
	StoreOrders(ctx context.Context, storeID string, limit int) ([]engine.Order, error)
	MarkPacked(ctx context.Context, storeID, holdID string, at time.Time) (engine.Order, error)
	StoreEvents(ctx context.Context, storeID string, after int64, limit int) ([]engine.StoreEvent, error)
}

// Server serves the v1 API, metrics, health and pages.
type Server struct {
	cfg     Config
	eng     *engine.Engine
	metrics *Metrics
	log     *slog.Logger
	promh   fasthttp.RequestHandler
	closing chan struct{}
	once    sync.Once
	reqCtx  *engine.TickContexts
}

// Close ends the live store streams, so that a graceful shutdown does not
// wait for them.
func (s *Server) Close() { s.once.Do(func() { close(s.closing) }) }

// New returns a Server, or an error when the config is incomplete.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Engine == nil:
		return nil, errors.New("api: config needs an Engine")
	case len(cfg.AdminToken) < 16:
		return nil, errors.New("api: the admin token must be at least 16 characters")
	}
	if cfg.Metrics == nil {
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
		if cfg.Gatherer == nil {
			cfg.Gatherer = reg
		}
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	return &Server{
		cfg:     cfg,
		eng:     cfg.Engine,
		metrics: cfg.Metrics,
		log:     cfg.Logger,
		promh:   fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})),
		closing: make(chan struct{}),
		reqCtx:  engine.NewTickContexts(cfg.RequestTimeout),
	}, nil
}

// StoreToken returns the bearer token of a store; see engine.StoreToken.
func StoreToken(adminToken, storeID string) string { return engine.StoreToken(adminToken, storeID) }

// principal is who a request's bearer token says the caller is.
type principal struct {
	admin bool
	store string // a store's token
}

func (s *Server) principal(ctx *fasthttp.RequestCtx) principal {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	tok, ok := bytes.CutPrefix(auth, []byte("Bearer "))
	if !ok || len(tok) == 0 {
		return principal{}
	}
	if subtle.ConstantTimeCompare(tok, []byte(s.cfg.AdminToken)) == 1 {
		return principal{admin: true}
	}
	i := bytes.LastIndexByte(tok, '.')
	if i <= 0 {
		return principal{}
	}
	store := string(tok[:i])
	if subtle.ConstantTimeCompare(tok, []byte(StoreToken(s.cfg.AdminToken, store))) == 1 {
		return principal{store: store}
	}
	return principal{}
}

// Handler returns the fasthttp handler of every route.
func (s *Server) Handler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		route := s.route(ctx, start)
		code := ctx.Response.StatusCode()
		s.metrics.observeRequest(route, code, time.Since(start))
		if code >= 500 {
			s.log.Warn("request failed", "route", route, "status", code)
		}
	}
}

// OpsHandler serves only /metrics, /healthz and /readyz: what worker
// processes (relay, consumers, sweeper) expose.
func (s *Server) OpsHandler() fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/metrics", "/healthz", "/readyz":
			s.Handler()(ctx)
		default:
			s.fail(ctx, errNotFound)
		}
	}
}

// segs is a request path's segments ("/v1/sales/x" is v1, sales, x);
// the router matches at most len(segs) of them. Handlers take it by
// value, so that splitting a path costs no allocation beyond the path.
type segs [6]string

// splitPath splits path, less its leading and trailing slashes, into its
// segments; ok is false when it has more than segs holds.
func splitPath(path string) (seg segs, n int, ok bool) {
	path = strings.Trim(path, "/")
	for n < len(seg) {
		i := strings.IndexByte(path, '/')
		if i < 0 {
			seg[n] = path
			return seg, n + 1, true
		}
		seg[n], path = path[:i], path[i+1:]
		n++
	}
	return seg, n, false
}

// endpoint is a handler of a route for one method.
type endpoint struct {
	method string
	name   string // the route's label in metrics
	h      func(*Server, context.Context, *fasthttp.RequestCtx, segs) error
}

// apiRoute is a /v1 path pattern, its segments after v1 ("*" matches
// any), and its endpoints.
type apiRoute struct {
	pattern []string
	eps     []endpoint
}

// apiRoutes is every /v1 route.
var apiRoutes = []apiRoute{
	{[]string{"stores"}, []endpoint{{"POST", "stores_upsert", (*Server).upsertStores}, {"GET", "stores_list", (*Server).listStores}}},
	{[]string{"stores", "*", "orders"}, []endpoint{{"GET", "store_orders", (*Server).storeOrders}}},
	{[]string{"stores", "*", "events"}, []endpoint{{"GET", "store_events", (*Server).storeEvents}}},
	{[]string{"stores", "*", "orders", "*", "packed"}, []endpoint{{"POST", "order_packed", (*Server).orderPacked}}},
	{[]string{"stores", "*", "orders", "*", "picked-up"}, []endpoint{{"POST", "order_picked_up", (*Server).orderPickedUp}}},
	{[]string{"sales"}, []endpoint{{"POST", "sales_create", (*Server).createSale}, {"GET", "sales_list", (*Server).listSales}}},
	{[]string{"sales", "*"}, []endpoint{{"GET", "sale_get", (*Server).getSale}}},
	{[]string{"sales", "*", "stores"}, []endpoint{{"GET", "sale_stores", (*Server).saleStores}}},
	{[]string{"sales", "*", "stock"}, []endpoint{{"GET", "sale_stock", (*Server).saleStock}}},
	{[]string{"sales", "*", "reservations"}, []endpoint{{"POST", "reserve", (*Server).reserve}}},
	{[]string{"holds", "*"}, []endpoint{{"GET", "hold_get", (*Server).getHold}}},
	{[]string{"holds", "*", "confirm"}, []endpoint{{"POST", "hold_confirm", (*Server).confirm}}},
	{[]string{"holds", "*", "cancel"}, []endpoint{{"POST", "hold_cancel", (*Server).cancel}}},
}

// match reports whether the segments after v1 fit r's pattern.
func (r *apiRoute) match(seg []string) bool {
	if len(seg) != len(r.pattern) {
		return false
	}
	for i, p := range r.pattern {
		if p != "*" && p != seg[i] {
			return false
		}
	}
	return true
}

// route dispatches a request that began at start and returns the route
// label for metrics.
func (s *Server) route(ctx *fasthttp.RequestCtx, start time.Time) string {
	switch string(ctx.Path()) {
	case "/", "/index.html":
		return s.serveFile(ctx, "web/index.html", "text/html; charset=utf-8", "page")
	case "/store", "/store.html":
		return s.serveFile(ctx, "web/store.html", "text/html; charset=utf-8", "page")
	case "/healthz":
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
		return "healthz"
	case "/readyz":
		s.ready(s.reqCtx.Get(start), ctx)
		return "readyz"
	case "/metrics":
		s.promh(ctx)
		return "metrics"
	}
	seg, n, ok := splitPath(string(ctx.Path()))
	var r *apiRoute
	if ok && n >= 2 && seg[0] == "v1" {
		for i := range apiRoutes {
			if apiRoutes[i].match(seg[1:n]) {
				r = &apiRoutes[i]
				break
			}
		}
	}
	if r == nil {
		s.fail(ctx, errNotFound)
		return "unknown"
	}
	for _, ep := range r.eps {
		if ep.method == string(ctx.Method()) {
			if err := ep.h(s, s.reqCtx.Get(start), ctx, seg); err != nil {
				s.fail(ctx, err)
			}
			return ep.name
		}
	}
	allow := make([]string, len(r.eps))
	for i, ep := range r.eps {
		allow[i] = ep.method
	}
	ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
	s.fail(ctx, errMethodNotAllowed)
	return r.eps[0].name
}

func (s *Server) serveFile(ctx *fasthttp.RequestCtx, name, ctype, route string) string {
	b, err := webFS.ReadFile(name)
	if err != nil {
		s.fail(ctx, errNotFound)
		return route
	}
	ctx.SetContentType(ctype)
	ctx.SetBody(b)
	return route
}

func (s *Server) ready(c context.Context, ctx *fasthttp.RequestCtx) {
	failed := map[string]string{}
	for _, ch := range s.cfg.Ready {
		if err := ch.Check(c); err != nil {
			failed[ch.Name] = "unreachable"
			s.log.Warn("readiness check failed", "check", ch.Name, "err", err)
		}
	}
	if len(failed) > 0 {
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

// fail writes err as the contract's error body.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	status, code := statusOf(err)
	if status >= 500 {
		s.log.Error("request error", "path", string(ctx.Path()), "err", err)
	}
	writeJSON(ctx, status, map[string]any{"error": map[string]string{"code": code, "message": clientMessage(status, err)}})
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// decode reads the request body as exactly one JSON value into v, refusing
// unknown fields. Errors wrap engine.ErrInvalid.
func decode(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("%w: empty body, JSON expected", engine.ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON: %s", engine.ErrInvalid, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: malformed JSON: trailing data after the value", engine.ErrInvalid)
	}
	return nil
}

// jsonProblem says what encoding/json found wrong in a body in the
// contract's terms: its own words name the Go types the body was decoded
// into, which are no client's business.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		what := "the body"
		if te.Field != "" {
			what = te.Field
		}
		return fmt.Sprintf("%s must be %s, not %s", what, jsonKind(te.Type), te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON values that decode into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

func (s *Server) requireAdmin(ctx *fasthttp.RequestCtx) error {
	if !s.principal(ctx).admin {
		return errUnauthorized
	}
	return nil
}

// storeToken is one store's id with its bearer token and webhook secret.
type storeToken struct {
	ID            string `json:"id"`
	Token         string `json:"token"`
	WebhookSecret string `json:"webhook_secret"`
}

func (s *Server) upsertStores(c context.Context, ctx *fasthttp.RequestCtx, _ segs) error {
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	var stores []engine.Store
	if err := decode(ctx, &stores); err != nil {
		return err
	}
	if err := s.eng.UpsertStores(c, stores); err != nil {
		return err
	}
	out := make([]storeToken, len(stores))
	for i, st := range stores {
		out[i] = storeToken{ID: st.ID, Token: StoreToken(s.cfg.AdminToken, st.ID), WebhookSecret: engine.WebhookSecret(s.cfg.AdminToken, st.ID)}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"stores": out})
	return nil
}

func (s *Server) listStores(c context.Context, ctx *fasthttp.RequestCtx, _ segs) error {
	st, err := s.eng.Stores(c)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"stores": st})
	return nil
}

// saleBody is the contract's sale creation body.
type saleBody struct {
	ID             string         `json:"id"`
	SKU            string         `json:"sku"`
	Name           string         `json:"name"`
	StartsAt       *time.Time     `json:"starts_at"`
	EndsAt         *time.Time     `json:"ends_at"`
	PerUserLimit   int            `json:"per_user_limit"`
	HoldTTLSeconds int            `json:"hold_ttl_seconds"`
	MaxDistanceKm  float64        `json:"max_distance_km"`
	Allocations    map[string]int `json:"allocations"`
	Quantity       int            `json:"quantity"`
}

// saleView is a sale as GET returns it.
type saleView struct {
	engine.Sale
	Remaining int              `json:"remaining"`
	State     engine.SaleState `json:"state"`
}

func (s *Server) createSale(c context.Context, ctx *fasthttp.RequestCtx, _ segs) error {
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	var b saleBody
	if err := decode(ctx, &b); err != nil {
		return err
	}
	if b.StartsAt == nil || b.EndsAt == nil {
		return fmt.Errorf("%w: starts_at and ends_at are required (RFC 3339)", engine.ErrInvalid)
	}
	if b.HoldTTLSeconds < 0 || b.MaxDistanceKm < 0 || b.PerUserLimit < 0 || b.Quantity < 0 {
		return fmt.Errorf("%w: per_user_limit, hold_ttl_seconds, max_distance_km and quantity must not be negative", engine.ErrInvalid)
	}
	sale, err := s.eng.CreateSale(c, engine.Sale{
		ID: b.ID, SKU: b.SKU, Name: b.Name, StartsAt: *b.StartsAt, EndsAt: *b.EndsAt,
		PerUserLimit: b.PerUserLimit, HoldTTLSeconds: b.HoldTTLSeconds, MaxDistanceKm: b.MaxDistanceKm,
		Allocations: b.Allocations, Quantity: b.Quantity,
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusCreated, saleView{Sale: sale, Remaining: sale.Total(), State: sale.State(s.eng.Now())})
	return nil
}

func (s *Server) listSales(c context.Context, ctx *fasthttp.RequestCtx, _ segs) error {
	sales, err := s.eng.Sales(c)
	if err != nil {
		return err
	}
	now := s.eng.Now()
	out := make([]saleView, 0, len(sales))
	for _, sale := range sales {
		_, st, err := s.eng.SaleStatus(c, sale.ID)
		if err != nil {
			return err
		}
		out = append(out, saleView{Sale: sale, Remaining: st.Remaining, State: sale.State(now)})
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"sales": out})
	return nil
}

func (s *Server) getSale(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	sale, st, err := s.eng.SaleStatus(c, seg[2])
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, saleView{Sale: sale, Remaining: st.Remaining, State: sale.State(s.eng.Now())})
	return nil
}

func (s *Server) saleStock(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	_, st, err := s.eng.SaleStatus(c, seg[2])
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, st)
	return nil
}

// queryFloat reads a required float query argument.
func queryFloat(ctx *fasthttp.RequestCtx, name string) (float64, error) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return 0, fmt.Errorf("%w: query parameter %s is required", engine.ErrInvalid, name)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: query parameter %s is not a number", engine.ErrInvalid, name)
	}
	return f, nil
}

func (s *Server) saleStores(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	lat, err := queryFloat(ctx, "lat")
	if err != nil {
		return err
	}
	lon, err := queryFloat(ctx, "lon")
	if err != nil {
		return err
	}
	limit := 20
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		if limit, err = strconv.Atoi(string(v)); err != nil || limit < 1 || limit > 500 {
			return fmt.Errorf("%w: limit must be 1-500", engine.ErrInvalid)
		}
	}
	near, err := s.eng.NearbyStores(c, seg[2], lat, lon, limit)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(near))
	for i, n := range near {
		out[i] = map[string]any{"store_id": n.ID, "name": n.Name, "lat": n.Lat, "lon": n.Lon, "distance_km": n.DistanceKm, "remaining": n.Remaining}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"stores": out})
	return nil
}

// reserveBody is the contract's reservation body as read: each number's
// presence apart from its value, so that reading one allocates nothing.
type reserveBody struct {
	UserID, StoreID string
	Lat, Lon        float64
	Quantity        int
	// Whether the body gave lat, lon and quantity.
	HasLat, HasLon, HasQuantity bool
}

// reserveJSON is the reservation body as encoding/json decodes it.
type reserveJSON struct {
	UserID   string   `json:"user_id"`
	Lat      *float64 `json:"lat"`
	Lon      *float64 `json:"lon"`
	StoreID  string   `json:"store_id"`
	Quantity *int     `json:"quantity"`
}

func (j *reserveJSON) body() reserveBody {
	b := reserveBody{UserID: j.UserID, StoreID: j.StoreID}
	if j.Lat != nil {
		b.Lat, b.HasLat = *j.Lat, true
	}
	if j.Lon != nil {
		b.Lon, b.HasLon = *j.Lon, true
	}
	if j.Quantity != nil {
		b.Quantity, b.HasQuantity = *j.Quantity, true
	}
	return b
}

// shopperID returns the shopper a request acts for. Until signed member
// tokens exist, it is the user_id the client sends; this is the one place
// that changes when they do.
func shopperID(_ *fasthttp.RequestCtx, claimed string) (string, error) {
	if !engine.ValidUserID(claimed) {
		return "", fmt.Errorf("%w: user_id must be 1-128 letters, digits or \"_.:@+-\"", engine.ErrInvalid)
	}
	return claimed, nil
}

// holdView is a hold as the API returns it.
type holdView struct {
	engine.Hold
	StoreName string `json:"store_name,omitempty"`
}

func (s *Server) reserve(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	var b reserveBody
	if !parseReserveBody(ctx.PostBody(), &b) {
		var j reserveJSON
		if err := decode(ctx, &j); err != nil {
			s.metrics.countReservation("invalid")
			return err
		}
		b = j.body()
	}
	req := engine.ReserveRequest{SaleID: seg[2], StoreID: b.StoreID, IdempotencyKey: string(ctx.Request.Header.Peek("Idempotency-Key"))}
	res, err := s.doReserve(c, ctx, b, req)
	s.metrics.countReservation(outcome(res, err))
	if err != nil {
		return err
	}
	status := fasthttp.StatusCreated
	if res.Replayed {
		status = fasthttp.StatusOK
	}
	writeHold(ctx, status, holdView{Hold: res.Hold, StoreName: res.StoreName})
	return nil
}

func (s *Server) doReserve(c context.Context, ctx *fasthttp.RequestCtx, b reserveBody, req engine.ReserveRequest) (engine.Reservation, error) {
	var err error
	if req.UserID, err = shopperID(ctx, b.UserID); err != nil {
		return engine.Reservation{}, err
	}
	if b.HasLat != b.HasLon {
		return engine.Reservation{}, fmt.Errorf("%w: give both lat and lon", engine.ErrInvalid)
	}
	if b.HasLat {
		req.HasLocation, req.Lat, req.Lon = true, b.Lat, b.Lon
	}
	req.Quantity = 1
	if b.HasQuantity {
		if b.Quantity < 1 {
			return engine.Reservation{}, fmt.Errorf("%w: quantity must be positive", engine.ErrInvalid)
		}
		req.Quantity = b.Quantity
	}
	return s.eng.Reserve(c, req)
}

func (s *Server) getHold(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	h, err := s.eng.Hold(c, seg[2])
	if err != nil {
		return err
	}
	writeHold(ctx, fasthttp.StatusOK, holdView{Hold: h})
	return nil
}

// actor works out who is confirming or cancelling: an operator (anyone's
// hold), a store (its own holds), or, when shopperOK, a shopper naming
// themselves in the body (their own holds).
func (s *Server) actor(ctx *fasthttp.RequestCtx, shopperOK bool) (engine.Actor, error) {
	p := s.principal(ctx)
	switch {
	case p.admin:
		return engine.Actor{}, nil
	case p.store != "":
		return engine.Actor{StoreID: p.store}, nil
	case !shopperOK:
		return engine.Actor{}, errUnauthorized
	}
	var b struct {
		UserID string `json:"user_id"`
	}
	if err := decode(ctx, &b); err != nil {
		return engine.Actor{}, err
	}
	user, err := shopperID(ctx, b.UserID)
	if err != nil {
		return engine.Actor{}, err
	}
	return engine.Actor{UserID: user}, nil
}

func (s *Server) confirm(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	who, err := s.actor(ctx, false)
	if err != nil {
		return err
	}
	h, err := s.eng.Confirm(c, seg[2], who)
	if err != nil {
		return err
	}
	writeHold(ctx, fasthttp.StatusOK, holdView{Hold: h})
	return nil
}

func (s *Server) cancel(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	who, err := s.actor(ctx, true)
	if err != nil {
		return err
	}
	h, err := s.eng.Cancel(c, seg[2], who)
	if err != nil {
		return err
	}
	writeHold(ctx, fasthttp.StatusOK, holdView{Hold: h})
	return nil
}

// storeAccess checks that the caller is the operator or the store itself.
func (s *Server) storeAccess(ctx *fasthttp.RequestCtx, storeID string) error {
	p := s.principal(ctx)
	switch {
	case p.admin:
	case p.store == "":
		return errUnauthorized
	case p.store != storeID:
		return fmt.Errorf("%w: a store token opens only its own store", engine.ErrForbidden)
	}
	if s.cfg.Stores == nil {
		return fmt.Errorf("%w: no order store configured", engine.ErrUnavailable)
	}
	return nil
}

func (s *Server) storeOrders(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	if err := s.storeAccess(ctx, seg[2]); err != nil {
		return err
	}
	limit := 200
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		var err error
		if limit, err = strconv.Atoi(string(v)); err != nil || limit < 1 || limit > 1000 {
			return fmt.Errorf("%w: limit must be 1-1000", engine.ErrInvalid)
		}
	}
	orders, err := s.cfg.Stores.StoreOrders(c, seg[2], limit)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"store_id": seg[2], "orders": orders})
	return nil
}

func (s *Server) orderPacked(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	if err := s.storeAccess(ctx, seg[2]); err != nil {
		return err
	}
	o, err := s.cfg.Stores.MarkPacked(c, seg[2], seg[4], s.eng.Now())
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, o)
	return nil
}

func (s *Server) orderPickedUp(c context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	if err := s.storeAccess(ctx, seg[2]); err != nil {
		return err
	}
	h, err := s.eng.Confirm(c, seg[4], engine.Actor{StoreID: seg[2]})
	if err != nil {
		return err
	}
	writeHold(ctx, fasthttp.StatusOK, holdView{Hold: h})
	return nil
}

// storeEvents streams a store's notifications as Server-Sent Events. The
// SSE id is the notification's sequence number: a client that reconnects
// with Last-Event-ID (or ?after=) resumes right after it.
func (s *Server) storeEvents(_ context.Context, ctx *fasthttp.RequestCtx, seg segs) error {
	if err := s.storeAccess(ctx, seg[2]); err != nil {
		return err
	}
	var after int64
	last := ctx.Request.Header.Peek("Last-Event-ID")
	if len(last) == 0 {
		last = ctx.QueryArgs().Peek("after")
	}
	if len(last) > 0 {
		var err error
		if after, err = strconv.ParseInt(string(last), 10, 64); err != nil || after < 0 {
			return fmt.Errorf("%w: Last-Event-ID must be a non-negative integer", engine.ErrInvalid)
		}
	}
	storeID := strings.Clone(seg[2]) // the stream outlives the request buffers
	feed, poll, closing, log := s.cfg.Stores, s.cfg.PollInterval, s.closing, s.log
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		if _, err := fmt.Fprintf(w, "retry: 2000\n: stream of store %s\n\n", storeID); err != nil || w.Flush() != nil {
			return
		}
		lastWrite := time.Now()
		for {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			events, err := feed.StoreEvents(c, storeID, after, 200)
			cancel()
			if err != nil {
				log.Warn("store stream read failed", "store", storeID, "err", err)
			}
			for _, e := range events {
				fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, e.Payload)
				after = e.Seq
			}
			if len(events) == 0 && time.Since(lastWrite) > 15*time.Second {
				w.WriteString(": keep-alive\n\n")
			}
			if len(events) > 0 || time.Since(lastWrite) > 15*time.Second {
				if w.Flush() != nil {
					return // the store went away
				}
				lastWrite = time.Now()
			}
			if len(events) == 200 {
				continue
			}
			select {
			case <-closing:
				return
			case <-time.After(poll):
			}
		}
	})
	return nil
}
