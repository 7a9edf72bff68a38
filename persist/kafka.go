package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/engine"
)

// KafkaConfig names the brokers and the hold events topic.
type KafkaConfig struct {
	Brokers []string
	// Topic is the hold events topic; "flashsale.hold-events" by default.
	Topic string
	// Partitions and ReplicationFactor are used when EnsureTopic creates
	// the topic; 12 and 1 by default.
	Partitions        int
	ReplicationFactor int
}

func (c *KafkaConfig) defaults() {
	if c.Topic == "" {
		c.Topic = "flashsale.hold-events"
	}
	if c.Partitions <= 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
}

// EnsureTopic creates the topic when it does not exist. It returns an error
// wrapping engine.ErrUnavailable when no broker answers.
func EnsureTopic(ctx context.Context, cfg KafkaConfig) error {
	cfg.defaults()
	var d kafka.Dialer
	var conn *kafka.Conn
	var err error
	for _, b := range cfg.Brokers {
		if conn, err = d.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if conn == nil {
		return fmt.Errorf("%w: kafka %v: %v", engine.ErrUnavailable, cfg.Brokers, err)
	}
	defer conn.Close()
	ctl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("%w: kafka controller: %v", engine.ErrUnavailable, err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port)))
	if err != nil {
		return fmt.Errorf("%w: kafka controller: %v", engine.ErrUnavailable, err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: cfg.Topic, NumPartitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q: %w", cfg.Topic, err)
	}
	return nil
}

// Publisher produces hold events to Kafka and returns only once every
// broker in sync acknowledged them. Events are keyed by store, so one
// store's events stay in order on one partition. It implements
// engine.Publisher.
type Publisher struct {
	w *kafka.Writer
}

var _ engine.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher; Close it when done.
func NewPublisher(cfg KafkaConfig) *Publisher {
	cfg.defaults()
	return &Publisher{w: &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   8 << 20,
		// A synchronous writer waits for its batch to fill or time out:
		// keep the wait short (the default is a whole second).
		BatchTimeout: 2 * time.Millisecond,
		MaxAttempts:  3,
		WriteTimeout: 5 * time.Second,
		ReadTimeout:  5 * time.Second,
	}}
}

// Publish produces events synchronously. It returns an error wrapping
// engine.ErrUnavailable when Kafka did not acknowledge all of them; the
// caller retries the whole batch.
func (p *Publisher) Publish(ctx context.Context, events []engine.Event) error {
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		v, err := engine.EncodeEvent(e)
		if err != nil {
			return err
		}
		msgs[i] = kafka.Message{
			Key:   []byte(e.StoreID),
			Value: v,
			Headers: []kafka.Header{
				{Key: "event-id", Value: []byte(e.ID)},
				{Key: "event-type", Value: []byte(e.Type)},
				{Key: "schema", Value: []byte(engine.EventSchema)},
			},
		}
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("%w: kafka: %v", engine.ErrUnavailable, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error { return p.w.Close() }

// ConsumerConfig configures a consumer group on the hold events topic.
type ConsumerConfig struct {
	KafkaConfig
	Group string
	// Batch is the most events handed to the handler at once; 500 by default.
	Batch int
	// Linger is how long a batch waits to fill once it has one event; 10 ms
	// by default.
	Linger time.Duration
	// OnBatch, when set, is told each batch's size, handling time and error.
	OnBatch func(n int, d time.Duration, err error)
	Logger  *slog.Logger
}

// Consume reads the topic as a member of cfg.Group and hands events to
// handle in batches. A batch's offsets are committed only after handle
// returned nil; a failing handle is retried with backoff, so an event is
// never skipped (at-least-once: handlers must be idempotent). Consume
// returns when ctx is done.
func Consume(ctx context.Context, cfg ConsumerConfig, handle func(ctx context.Context, events []engine.Event) error) error {
	cfg.defaults()
	if cfg.Group == "" {
		return errors.New("consume: config needs a Group")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 10 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:  cfg.Brokers,
		GroupID:  cfg.Group,
		Topic:    cfg.Topic,
		MinBytes: 1,
		MaxBytes: 4 << 20,
		// kafka-go gives the fetch response MaxWait to start arriving; the
		// broker answers at once when there is data, and holds an empty
		// fetch up to MaxWait. 50 ms was too tight: a busy broker's answer
		// to a partition with a backlog came later than that every time,
		// and the reader retried the same fetch forever.
		MaxWait:           500 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		CommitInterval:    0, // commit synchronously, after the handler
	})
	defer r.Close()
	for ctx.Err() == nil {
		first, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			cfg.Logger.Warn("kafka fetch failed", "group", cfg.Group, "err", err)
			pause(ctx, 200*time.Millisecond)
			continue
		}
		msgs := []kafka.Message{first}
		lctx, cancel := context.WithTimeout(ctx, cfg.Linger)
		for len(msgs) < cfg.Batch {
			m, err := r.FetchMessage(lctx)
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		cancel()
		events := make([]engine.Event, 0, len(msgs))
		for _, m := range msgs {
			e, err := engine.DecodeEvent(m.Value)
			if err != nil {
				// It can never be handled: log it and move past it rather
				// than stop every store's events behind it.
				cfg.Logger.Error("dropping undecodable event", "group", cfg.Group, "partition", m.Partition, "offset", m.Offset, "err", err)
				continue
			}
			events = append(events, e)
		}
		backoff := 50 * time.Millisecond
		for {
			start := time.Now()
			err := handle(ctx, events)
			if cfg.OnBatch != nil {
				cfg.OnBatch(len(events), time.Since(start), err)
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			cfg.Logger.Warn("event handler failed; retrying", "group", cfg.Group, "events", len(events), "err", err)
			pause(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
		for {
			err := r.CommitMessages(ctx, msgs...)
			if err == nil || ctx.Err() != nil {
				break
			}
			cfg.Logger.Warn("kafka commit failed; retrying", "group", cfg.Group, "err", err)
			pause(ctx, 200*time.Millisecond)
		}
	}
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// GroupLag returns how many messages of the topic the consumer group has
// not committed yet, summed over partitions: zero means it has handled
// everything produced so far.
func GroupLag(ctx context.Context, cfg KafkaConfig, group string) (int64, error) {
	offs, err := GroupOffsets(ctx, cfg, group)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, o := range offs {
		lag += o.End - max(o.Committed, 0)
	}
	return lag, nil
}

// PartitionOffsets is one partition's end offset and the offset a consumer
// group committed on it (-1: none yet).
type PartitionOffsets struct {
	End, Committed int64
}

// GroupOffsets returns, for every partition of the topic, its end offset
// and what the consumer group committed: where a consumer stands.
func GroupOffsets(ctx context.Context, cfg KafkaConfig, group string) (map[int]PartitionOffsets, error) {
	cfg.defaults()
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("%w: kafka metadata: %v", engine.ErrUnavailable, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("kafka topic %q: %v", cfg.Topic, md.Topics)
	}
	var ids []int
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		ids = append(ids, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	last, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("%w: kafka offsets: %v", engine.ErrUnavailable, err)
	}
	committed, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{cfg.Topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("%w: kafka group offsets: %v", engine.ErrUnavailable, err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("kafka group %q: %w", group, committed.Error)
	}
	out := make(map[int]PartitionOffsets, len(ids))
	for _, p := range last.Topics[cfg.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("kafka partition %d: %w", p.Partition, p.Error)
		}
		out[p.Partition] = PartitionOffsets{End: p.LastOffset, Committed: -1}
	}
	for _, p := range committed.Topics[cfg.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("kafka group %q partition %d: %w", group, p.Partition, p.Error)
		}
		o := out[p.Partition]
		o.Committed = p.CommittedOffset
		out[p.Partition] = o
	}
	return out, nil
}
