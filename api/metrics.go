package api

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashsale/flashsale/engine"
)

// Metrics are the Prometheus series an operator watches during a sale.
// Labels are route, outcome, script and status class only: never a user,
// SKU or error text.
type Metrics struct {
	requests     *prometheus.HistogramVec
	reservations *prometheus.CounterVec
	scripts      *prometheus.HistogramVec
	expired      prometheus.Counter
	sweepErrors  prometheus.Counter

	relayEvents   *prometheus.CounterVec
	relayBatch    prometheus.Histogram
	outboxPending prometheus.Gauge
	consumed      *prometheus.CounterVec
	consumerBatch *prometheus.HistogramVec
	webhooks      *prometheus.CounterVec
	reserveBatch  prometheus.Histogram
	reserveQueued prometheus.Histogram
	reserveTrip   prometheus.Histogram

	// The series every request touches, by their labels: see series.
	requestSeries     series[requestLabels, prometheus.Observer]
	reservationSeries series[string, prometheus.Counter]
}

// requestLabels are an HTTP request's labels: its route's name and its
// status's class ("2xx").
type requestLabels struct {
	route, status string
}

// series remembers a metric vector's child for each set of labels met, in
// a map that is read without a lock and copied when a set is first met.
// The labels of the series it serves come from small fixed sets (route
// names, status classes, outcomes), so the map stays small and copies are
// rare; a request then looks its series up with one map read instead of
// hashing its label values under the vector's lock.
type series[K comparable, V any] struct {
	m    atomic.Pointer[map[K]V]
	mu   sync.Mutex
	make func(K) V
}

func (s *series[K, V]) get(k K) V {
	if m := s.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := map[K]V{}
	if old != nil {
		next = maps.Clone(*old)
	}
	v := s.make(k)
	next[k] = v
	s.m.Store(&next)
	return v
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	fast := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route and status class.",
			Buckets: fast,
		}, []string{"route", "status"}),
		reservations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "reservations_total",
			Help: "Reservation requests by outcome (created, replayed, sold_out, ...).",
		}, []string{"outcome"}),
		scripts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "redis_script_duration_seconds",
			Help:    "Time of one Redis Lua script call, by script and result.",
			Buckets: fast,
		}, []string{"script", "result"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "holds_expired_total",
			Help: "Holds the sweeper expired and gave back.",
		}),
		sweepErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "sweep_errors_total",
			Help: "Sweeper passes that failed.",
		}),
		relayEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "relay_events_total",
			Help: "Outbox events the relay handed to Kafka, by result.",
		}, []string{"result"}),
		relayBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "relay_batch_seconds",
			Help:    "Time to publish one relay batch to Kafka.",
			Buckets: fast,
		}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "flashsale", Name: "outbox_pending_events",
			Help: "Entries waiting in the outboxes of active sales (relay lag): one per transition, or one per reserve batch of creations.",
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "consumer_events_total",
			Help: "Hold events handled by a consumer group, by group and result.",
		}, []string{"group", "result"}),
		consumerBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "consumer_batch_seconds",
			Help:    "Time to handle one consumer batch (database write included).",
			Buckets: fast,
		}, []string{"group"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "webhook_attempts_total",
			Help: "Webhook delivery attempts by result.",
		}, []string{"result"}),
		reserveBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "reserve_batch_size",
			Help:    "Reservations carried by one coalesced reserve script call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		reserveTrip: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "reserve_trip_sales",
			Help:    "Sales whose coalesced reserve script calls shared one round trip to Redis.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		reserveQueued: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flashsale", Name: "reserve_queue_wait_seconds",
			Help:    "Time a reservation waited in its sale's queue before the script call carrying it was sent.",
			Buckets: fast,
		}),
	}
	m.requestSeries.make = func(l requestLabels) prometheus.Observer {
		return m.requests.WithLabelValues(l.route, l.status)
	}
	m.reservationSeries.make = func(outcome string) prometheus.Counter {
		return m.reservations.WithLabelValues(outcome)
	}
	for _, c := range []prometheus.Collector{m.requests, m.reservations, m.scripts, m.expired, m.sweepErrors,
		m.relayEvents, m.relayBatch, m.outboxPending, m.consumed, m.consumerBatch, m.webhooks, m.reserveBatch, m.reserveQueued, m.reserveTrip} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeRequest records one HTTP request: its route's name, its status
// code and how long it took.
func (m *Metrics) observeRequest(route string, code int, d time.Duration) {
	m.requestSeries.get(requestLabels{route, statusClass(code)}).Observe(d.Seconds())
}

// countReservation counts one reservation request by its outcome.
func (m *Metrics) countReservation(outcome string) {
	m.reservationSeries.get(outcome).Inc()
}

// ObserveScript records one script call; it fits reservation.ScriptObserver.
func (m *Metrics) ObserveScript(script string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.scripts.WithLabelValues(script, result).Observe(d.Seconds())
}

// ObserveSweep records one sweeper pass.
func (m *Metrics) ObserveSweep(expired int, err error) {
	m.expired.Add(float64(expired))
	if err != nil {
		m.sweepErrors.Inc()
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// ObserveRelayBatch records one relay publish; it fits
// engine.RelayConfig.OnBatch.
func (m *Metrics) ObserveRelayBatch(n int, d time.Duration, err error) {
	m.relayEvents.WithLabelValues(result(err)).Add(float64(n))
	m.relayBatch.Observe(d.Seconds())
}

// SetOutboxPending records the relay's lag.
func (m *Metrics) SetOutboxPending(n int64) { m.outboxPending.Set(float64(n)) }

// ConsumerObserver returns a batch observer for one consumer group.
func (m *Metrics) ConsumerObserver(group string) func(n int, d time.Duration, err error) {
	return func(n int, d time.Duration, err error) {
		m.consumed.WithLabelValues(group, result(err)).Add(float64(n))
		m.consumerBatch.WithLabelValues(group).Observe(d.Seconds())
	}
}

// ObserveWebhook records one webhook attempt.
func (m *Metrics) ObserveWebhook(ok bool) {
	if ok {
		m.webhooks.WithLabelValues("delivered").Inc()
	} else {
		m.webhooks.WithLabelValues("failed").Inc()
	}
}

// outcome names a reservation result for the reservations counter.
func outcome(res engine.Reservation, err error) string {
	if err == nil {
		if res.Replayed {
			return "replayed"
		}
		return "created"
	}
	if errors.Is(err, engine.ErrInvalid) {
		return "invalid"
	}
	_, code := statusOf(err)
	return code
}

func statusClass(code int) string {
	switch {
	case code < 200:
		return "1xx"
	case code < 300:
		return "2xx"
	case code < 400:
		return "3xx"
	case code < 500:
		return "4xx"
	}
	return "5xx"
}

// ObserveReserveBatch records one coalesced reserve call; it fits
// engine.CoalesceConfig.OnBatch.
func (m *Metrics) ObserveReserveBatch(size int, _ time.Duration, _ error) {
	m.reserveBatch.Observe(float64(size))
}

// ObserveReserveTrip records how many sales' script calls one round trip
// to Redis carried; it fits engine.CoalesceConfig.OnCall.
func (m *Metrics) ObserveReserveTrip(sales int) {
	m.reserveTrip.Observe(float64(sales))
}

// ObserveReserveQueued records how long one reservation waited for its
// batch; it fits engine.CoalesceConfig.OnQueued.
func (m *Metrics) ObserveReserveQueued(wait time.Duration) {
	m.reserveQueued.Observe(wait.Seconds())
}

// RegisterCoalescer exports the coalescer's queue depth and shed count.
func RegisterCoalescer(reg prometheus.Registerer, stats func() engine.CoalesceStats) error {
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "flashsale", Name: "reserve_queue_depth",
			Help: "Reservations waiting for a coalesced script call, over every sale.",
		}, func() float64 { return float64(stats().Queued) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "flashsale", Name: "reserve_shed_total",
			Help: "Reservations refused with 503 overloaded because the sale's queue was full.",
		}, func() float64 { return float64(stats().Shed) })),
	)
}
