package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is every setting of the binary. Each has a flag and an environment
// variable of the same meaning; flags win.
type Config struct {
	HTTPAddr          string        // FLASHSALE_HTTP_ADDR, -http-addr
	RedisURL          string        // REDIS_URL, -redis-url
	RedisClusterAddrs string        // REDIS_CLUSTER_ADDRS, -redis-cluster-addrs
	DatabaseURL       string        // DATABASE_URL, -database-url
	KafkaBrokers      string        // KAFKA_BROKERS, -kafka-brokers
	AdminToken        string        // FLASHSALE_ADMIN_TOKEN, -admin-token
	Namespace         string        // FLASHSALE_NAMESPACE, -namespace
	SweepInterval     time.Duration // FLASHSALE_SWEEP_INTERVAL, -sweep-interval
	RequestTimeout    time.Duration // FLASHSALE_REQUEST_TIMEOUT, -request-timeout
	ShutdownTimeout   time.Duration // FLASHSALE_SHUTDOWN_TIMEOUT, -shutdown-timeout
	DemoStartDelay    time.Duration // FLASHSALE_DEMO_START_DELAY, -demo-start-delay
	KafkaTopic        string        // FLASHSALE_KAFKA_TOPIC, -kafka-topic
	KafkaPartitions   int           // FLASHSALE_KAFKA_PARTITIONS, -kafka-partitions
	KafkaDataDir      string        // FLASHSALE_KAFKA_DATA_DIR, -kafka-data-dir
	RelayName         string        // FLASHSALE_RELAY_NAME, -relay-name
	WebhookInterval   time.Duration // FLASHSALE_WEBHOOK_INTERVAL, -webhook-interval
	Coalesce          bool          // FLASHSALE_COALESCE, -coalesce
	CoalesceMaxBatch  int           // FLASHSALE_COALESCE_MAX_BATCH, -coalesce-max-batch
	CoalesceMaxWait   time.Duration // FLASHSALE_COALESCE_MAX_WAIT, -coalesce-max-wait
	CoalesceQueue     int           // FLASHSALE_COALESCE_QUEUE, -coalesce-queue
	CoalesceInFlight  int           // FLASHSALE_COALESCE_INFLIGHT, -coalesce-inflight
	CoalesceCalls     int           // FLASHSALE_COALESCE_CALLS, -coalesce-calls
	CoalesceMaxSales  int           // FLASHSALE_COALESCE_MAX_SALES, -coalesce-max-sales
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:         ":8080",
		RedisURL:         "redis://127.0.0.1:6379/0",
		DatabaseURL:      "postgres://127.0.0.1:5432/flashsale?sslmode=disable",
		Namespace:        "flashsale",
		SweepInterval:    500 * time.Millisecond,
		RequestTimeout:   5 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		DemoStartDelay:   time.Minute,
		KafkaTopic:       "flashsale.hold-events",
		KafkaPartitions:  12,
		RelayName:        defaultRelayName(),
		WebhookInterval:  200 * time.Millisecond,
		Coalesce:         true,
		CoalesceMaxBatch: 256,
		CoalesceQueue:    4096,
		CoalesceInFlight: 2,
		CoalesceMaxSales: 64,
	}
}

// defaultRelayName is stable across restarts of one host, so a restarted
// relay picks up its own pending entries at once.
func defaultRelayName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	return "relay-" + h
}

// envFlags binds flags to environment variables of the same meaning:
// each flag's usage names its variable, "($NAME)", and after parsing a flag
// not given on the command line takes its variable's value when it is set.
type envFlags struct {
	*flag.FlagSet
	vars map[string]string // flag name → variable
}

func newEnvFlags(fs *flag.FlagSet) *envFlags {
	return &envFlags{FlagSet: fs, vars: map[string]string{}}
}

// usage records that flag name reads variable env, and returns usage
// naming it.
func (e *envFlags) usage(name, env, usage string) string {
	e.vars[name] = env
	return usage + " ($" + env + ")"
}

// parse parses args, then sets every flag not given there from its
// variable. It returns the names of the flags set either way, and every
// variable that is not a valid value of its flag as one error.
func (e *envFlags) parse(args []string) (map[string]bool, error) {
	if err := e.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	e.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	e.VisitAll(func(f *flag.Flag) {
		env, ok := e.vars[f.Name]
		if !ok || set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(env); ok {
			if err := e.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("$%s: %v", env, err))
			}
			set[f.Name] = true
		}
	})
	return set, errors.Join(errs...)
}

// bind registers every setting on e with its environment variable.
func (c *Config) bind(e *envFlags) {
	str := func(p *string, name, env, usage string) { e.StringVar(p, name, *p, e.usage(name, env, usage)) }
	dur := func(p *time.Duration, name, env, usage string) { e.DurationVar(p, name, *p, e.usage(name, env, usage)) }
	num := func(p *int, name, env, usage string) { e.IntVar(p, name, *p, e.usage(name, env, usage)) }
	str(&c.HTTPAddr, "http-addr", "FLASHSALE_HTTP_ADDR", "address of the API and pages")
	str(&c.RedisURL, "redis-url", "REDIS_URL", "Redis URL")
	str(&c.RedisClusterAddrs, "redis-cluster-addrs", "REDIS_CLUSTER_ADDRS", "comma-separated host:port list; selects Redis Cluster")
	str(&c.DatabaseURL, "database-url", "DATABASE_URL", "PostgreSQL URL")
	str(&c.KafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "comma-separated Kafka bootstrap brokers")
	str(&c.AdminToken, "admin-token", "FLASHSALE_ADMIN_TOKEN", "bearer token of operator endpoints (generated when empty)")
	str(&c.Namespace, "namespace", "FLASHSALE_NAMESPACE", "prefix of the Redis keys that list stores and sales")
	dur(&c.SweepInterval, "sweep-interval", "FLASHSALE_SWEEP_INTERVAL", "how often expired holds are swept")
	dur(&c.RequestTimeout, "request-timeout", "FLASHSALE_REQUEST_TIMEOUT", "bound on the work of one HTTP request")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "FLASHSALE_SHUTDOWN_TIMEOUT", "how long shutdown waits for requests in flight")
	dur(&c.DemoStartDelay, "demo-start-delay", "FLASHSALE_DEMO_START_DELAY", "how long after start-up the demo sale starts")
	str(&c.KafkaTopic, "kafka-topic", "FLASHSALE_KAFKA_TOPIC", "topic of hold events")
	num(&c.KafkaPartitions, "kafka-partitions", "FLASHSALE_KAFKA_PARTITIONS", "partitions of the hold events topic when flashsale creates it")
	str(&c.KafkaDataDir, "kafka-data-dir", "FLASHSALE_KAFKA_DATA_DIR", "where the in-process Kafka broker keeps its log (memory only when empty)")
	str(&c.RelayName, "relay-name", "FLASHSALE_RELAY_NAME", "this relay's consumer name in the outbox group (stable across restarts)")
	dur(&c.WebhookInterval, "webhook-interval", "FLASHSALE_WEBHOOK_INTERVAL", "how often due webhooks are looked for")
	e.BoolVar(&c.Coalesce, "coalesce", c.Coalesce, e.usage("coalesce", "FLASHSALE_COALESCE", "gather concurrent reservations of a sale into batched script calls"))
	num(&c.CoalesceMaxBatch, "coalesce-max-batch", "FLASHSALE_COALESCE_MAX_BATCH", "most reservations in one script call")
	dur(&c.CoalesceMaxWait, "coalesce-max-wait", "FLASHSALE_COALESCE_MAX_WAIT", "while a sale is busy, how long a batch that is not full waits for company (0: never)")
	num(&c.CoalesceQueue, "coalesce-queue", "FLASHSALE_COALESCE_QUEUE", "reservations that may wait per sale before 503 overloaded")
	num(&c.CoalesceInFlight, "coalesce-inflight", "FLASHSALE_COALESCE_INFLIGHT", "script calls of one sale that may run at once")
	num(&c.CoalesceCalls, "coalesce-calls", "FLASHSALE_COALESCE_CALLS", "round trips to Redis with reservations that may run at once, over every sale (0: twice -coalesce-inflight; else at least -coalesce-inflight)")
	num(&c.CoalesceMaxSales, "coalesce-max-sales", "FLASHSALE_COALESCE_MAX_SALES", "most sales whose script calls share one round trip")
}

// validate checks the settings after parsing.
func (c *Config) validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("-http-addr must not be empty"))
	}
	if c.RedisURL == "" && c.RedisClusterAddrs == "" {
		errs = append(errs, errors.New("set -redis-url or -redis-cluster-addrs"))
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("the admin token must be at least 16 characters"))
	}
	if c.SweepInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("-sweep-interval must be at least 10ms"))
	}
	if c.RequestTimeout <= 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("-request-timeout and -shutdown-timeout must be positive"))
	}
	if c.KafkaPartitions < 1 || c.KafkaPartitions > 10000 {
		errs = append(errs, errors.New("-kafka-partitions must be 1-10000"))
	}
	if c.KafkaTopic == "" || c.RelayName == "" {
		errs = append(errs, errors.New("-kafka-topic and -relay-name must not be empty"))
	}
	if c.CoalesceMaxBatch < 1 || c.CoalesceMaxBatch > 4096 || c.CoalesceQueue < 1 || c.CoalesceInFlight < 1 || c.CoalesceInFlight > 64 {
		errs = append(errs, errors.New("-coalesce-max-batch must be 1-4096, -coalesce-queue at least 1, -coalesce-inflight 1-64"))
	}
	if c.CoalesceCalls < 0 || c.CoalesceCalls > 1024 || (c.CoalesceCalls > 0 && c.CoalesceCalls < c.CoalesceInFlight) || c.CoalesceMaxSales < 1 || c.CoalesceMaxSales > 1024 {
		errs = append(errs, errors.New("-coalesce-calls must be 0 or from -coalesce-inflight to 1024, -coalesce-max-sales 1-1024"))
	}
	if c.CoalesceMaxWait < 0 || c.CoalesceMaxWait > 100*time.Millisecond {
		errs = append(errs, errors.New("-coalesce-max-wait must be 0-100ms"))
	}
	if c.WebhookInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("-webhook-interval must be at least 10ms"))
	}
	if strings.ContainsAny(c.Namespace, "{} ") || c.Namespace == "" {
		errs = append(errs, errors.New("-namespace must be non-empty without braces or spaces"))
	}
	return errors.Join(errs...)
}
