// Package loadtest runs flash-sale load tests against a flashsale
// deployment over its HTTP API, with vegeta as the load generator.
//
// It owns the scenario (stores and a sale created for the run, or an
// existing sale; many distinct shoppers at random points around the stores,
// each with an Idempotency-Key, a share of them retrying exactly), the
// attack (a fixed rate, or a ramp of increasing rates that stops at the
// first step the deployment does not sustain), and the report: outcome
// counts by code, latency percentiles, throughput, time to sell out, and an
// audit of the sale's stock that proves nothing was oversold. Every result
// can be written in vegeta's binary format, so that `vegeta report` and
// `vegeta plot` work on it, and the requests of an attack can be written as
// a vegeta JSON targets file for the vegeta CLI instead of being sent.
//
// It imports nothing of flashsale: it knows the deployment only by its
// HTTP contract, so it can test any version of it anywhere.
package loadtest
