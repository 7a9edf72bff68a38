-- Orders: one row per hold, moved forward by hold events.
CREATE TABLE orders (
    hold_id      text PRIMARY KEY,
    sale_id      text        NOT NULL,
    store_id     text        NOT NULL,
    user_id      text        NOT NULL,
    quantity     integer     NOT NULL CHECK (quantity > 0),
    distance_km  double precision NOT NULL DEFAULT 0,
    state        text        NOT NULL CHECK (state IN ('held', 'confirmed', 'cancelled', 'expired')),
    state_rank   smallint    NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    packed_at    timestamptz,
    written_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_store_created ON orders (store_id, created_at DESC);
CREATE INDEX orders_sale ON orders (sale_id);

-- Every hold event applied, once: the orders consumer's idempotency record
-- and an audit trail.
CREATE TABLE order_events (
    event_id     text PRIMARY KEY,
    hold_id      text        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_hold ON order_events (hold_id);

-- The per-store notification log: what the store's live stream replays
-- (seq is the SSE event id) and what webhooks deliver.
CREATE TABLE store_events (
    seq          bigserial PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    store_id     text        NOT NULL,
    type         text        NOT NULL,
    payload      json        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX store_events_store_seq ON store_events (store_id, seq);

-- Webhook deliveries, one per store event for stores with a webhook URL.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    delivery_id     text        NOT NULL UNIQUE,
    store_id        text        NOT NULL,
    seq             bigint      NOT NULL REFERENCES store_events (seq),
    url             text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
