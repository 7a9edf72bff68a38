// Package geo owns flashsale's geography: WGS84 points and haversine
// distance, geohash encoding, decoding and neighbours, and an in-process
// store index that answers "the stores within r km of this shopper,
// nearest first" exactly.
//
// The index buckets stores by geohash cell and searches outwards ring by
// ring from the shopper's cell, wrapping across the antimeridian and
// clipping at the poles, until no unsearched cell can hold a nearer store.
// Ranking is always by haversine distance, never by geohash prefix. It
// imports only the standard library.
package geo
