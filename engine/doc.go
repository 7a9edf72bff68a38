// Package engine owns flashsale's domain: sales, stores, holds and their
// state machine (held → confirmed | cancelled | expired), the sentinel errors
// every adapter translates into, and the use-cases Reserve, Confirm, Cancel
// and Expire.
//
// The engine imports no infrastructure. It talks to the stock ledger (the
// Redis implementation lives in package reservation) through the small
// Ledger interface defined here, finds candidate stores with package geo,
// and takes its clock and randomness by injection so that time-based rules
// are testable without sleeping.
package engine
