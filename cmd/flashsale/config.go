package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
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
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:        ":8080",
		RedisURL:        "redis://127.0.0.1:6379/0",
		DatabaseURL:     "postgres://127.0.0.1:5432/flashsale?sslmode=disable",
		Namespace:       "flashsale",
		SweepInterval:   500 * time.Millisecond,
		RequestTimeout:  5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		DemoStartDelay:  time.Minute,
		KafkaTopic:      "flashsale.hold-events",
		KafkaPartitions: 12,
		RelayName:       defaultRelayName(),
		WebhookInterval: 200 * time.Millisecond,
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

// bind registers every setting on fs with its environment variable as the
// default when set.
func (c *Config) bind(fs *flag.FlagSet) error {
	var errs []error
	str := func(p *string, name, env, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" ($"+env+")")
	}
	dur := func(p *time.Duration, name, env, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("$%s: %q is not a duration like 500ms or 2s", env, v))
			}
			*p = d
		}
		fs.DurationVar(p, name, *p, usage+" ($"+env+")")
	}
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
	if v, ok := os.LookupEnv("FLASHSALE_KAFKA_PARTITIONS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("$FLASHSALE_KAFKA_PARTITIONS: %q is not a number", v))
		}
		c.KafkaPartitions = n
	}
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", c.KafkaPartitions, "partitions of the hold events topic when flashsale creates it ($FLASHSALE_KAFKA_PARTITIONS)")
	str(&c.KafkaDataDir, "kafka-data-dir", "FLASHSALE_KAFKA_DATA_DIR", "where the in-process Kafka broker keeps its log (memory only when empty)")
	str(&c.RelayName, "relay-name", "FLASHSALE_RELAY_NAME", "this relay's consumer name in the outbox group (stable across restarts)")
	dur(&c.WebhookInterval, "webhook-interval", "FLASHSALE_WEBHOOK_INTERVAL", "how often due webhooks are looked for")
	return errors.Join(errs...)
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
	if c.WebhookInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("-webhook-interval must be at least 10ms"))
	}
	if strings.ContainsAny(c.Namespace, "{} ") || c.Namespace == "" {
		errs = append(errs, errors.New("-namespace must be non-empty without braces or spaces"))
	}
	return errors.Join(errs...)
}
