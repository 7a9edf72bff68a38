// Package reservation is the Redis stock ledger behind the engine: one Lua
// script per operation (create sale, reserve, confirm, cancel, expire),
// embedded with go:embed, loaded at start-up and re-loaded on NOSCRIPT.
//
// Every key of one sale carries the hash tag {s:<saleID>}, so each script
// touches one Redis Cluster slot, and scripts see keys only through KEYS:
//
//	{s:<id>}:meta    hash: window, limit, TTL, sale JSON, initial counts
//	{s:<id>}:stock   hash: g/gc global remaining/confirmed, r:/c:<store>
//	                 per-store remaining/confirmed (held is derived:
//	                 initial - remaining - confirmed)
//	{s:<id>}:buyers  hash: user → units held or confirmed
//	{s:<id>}:holds   hash: hold id → hold record JSON,
//	                 r:<len>:<user>:<key> → hold id (idempotency),
//	                 x:<hold id> → the ids of a reserve batch's holds
//	{s:<id>}:expiry  sorted set scored by expiry (ms): x:<hold id> for a
//	                 reserve batch (its holds share their expiry), or a
//	                 hold id
//	{s:<id>}:outbox  stream: hold transitions (reserve writes one entry
//	                 per batch: its hold ids and how many it created; the
//	                 relay reads their records from the holds hash)
//
// Two keys outside any sale list what exists: <ns>:stores (hash of store
// JSON) and <ns>:sales (set of sale ids).
package reservation
