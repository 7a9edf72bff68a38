// Package api is flashsale's HTTP front end on fasthttp: the v1 JSON
// contract, operator and store authentication, the one table that maps
// domain errors to statuses and machine-readable codes, Prometheus metrics,
// health endpoints and the embedded web pages.
package api
