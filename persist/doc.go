// Package persist holds flashsale's PostgreSQL and Kafka adapters: embedded
// migrations, the orders table fed by hold events (idempotent by event id,
// monotonic in state), the per-store event log behind the live stream and
// webhooks, the Kafka publisher the relay uses, and the batch consumer that
// commits offsets only after the database did.
package persist
