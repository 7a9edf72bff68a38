package api

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/engine"
)

// Errors local to the HTTP layer.
var (
	errUnauthorized     = errors.New("missing or wrong bearer token")
	errNotFound         = errors.New("no such endpoint")
	errMethodNotAllowed = errors.New("method not allowed")
	errTooLarge         = errors.New("request body too large")
)

// errorStatus is the one table from errors to HTTP status and the stable
// machine-readable code clients switch on. Order matters only in that the
// first match wins.
var errorStatus = []struct {
	err    error
	status int
	code   string
}{
	{engine.ErrInvalid, fasthttp.StatusBadRequest, "invalid_request"},
	{errUnauthorized, fasthttp.StatusUnauthorized, "unauthorized"},
	{engine.ErrForbidden, fasthttp.StatusForbidden, "forbidden"},
	{engine.ErrUnknownSale, fasthttp.StatusNotFound, "unknown_sale"},
	{engine.ErrUnknownStore, fasthttp.StatusNotFound, "unknown_store"},
	{engine.ErrUnknownHold, fasthttp.StatusNotFound, "unknown_hold"},
	{errNotFound, fasthttp.StatusNotFound, "not_found"},
	{errMethodNotAllowed, fasthttp.StatusMethodNotAllowed, "method_not_allowed"},
	{engine.ErrSaleExists, fasthttp.StatusConflict, "sale_exists"},
	{engine.ErrSoldOut, fasthttp.StatusConflict, "sold_out"},
	{engine.ErrNoStoreStock, fasthttp.StatusConflict, "no_store_stock"},
	{engine.ErrLimitReached, fasthttp.StatusConflict, "limit_reached"},
	{engine.ErrHoldExpired, fasthttp.StatusConflict, "hold_expired"},
	{engine.ErrHoldCancelled, fasthttp.StatusConflict, "hold_cancelled"},
	{engine.ErrHoldConfirmed, fasthttp.StatusConflict, "hold_confirmed"},
	{engine.ErrEnded, fasthttp.StatusGone, "ended"},
	{errTooLarge, fasthttp.StatusRequestEntityTooLarge, "too_large"},
	{engine.ErrNotStarted, 425, "not_started"}, // 425 Too Early
	{engine.ErrOverloaded, fasthttp.StatusServiceUnavailable, "overloaded"},
	{engine.ErrUnavailable, fasthttp.StatusServiceUnavailable, "unavailable"},
}

// statusOf returns the status and code for err; unknown errors are 500
// "internal".
func statusOf(err error) (int, string) {
	for _, e := range errorStatus {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return fasthttp.StatusInternalServerError, "internal"
}

// clientMessage is the text a client sees for err: the domain error's text
// for 4xx (it was written for clients), a fixed text for everything else,
// so that internal details never leak.
func clientMessage(status int, err error) string {
	switch {
	case status == fasthttp.StatusServiceUnavailable && errors.Is(err, engine.ErrOverloaded):
		return "the sale is overloaded; retry shortly"
	case status == fasthttp.StatusServiceUnavailable:
		return "a backing service is unavailable; retry shortly"
	case status >= 500:
		return "internal error"
	}
	return err.Error()
}
