package engine

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// Limits applied when a sale is validated.
const (
	DefaultPerUserLimit  = 1
	DefaultHoldTTL       = 15 * time.Minute
	DefaultMaxDistanceKm = 50.0
	MaxHoldTTL           = 7 * 24 * time.Hour
	MaxQuantityPerHold   = 100
	maxDistanceKmLimit   = 20038.0 // half the Earth's circumference
)

// ValidID reports whether s can name a sale or a store: 1 to 64 characters of
// letters, digits, '_' and '-'.
func ValidID(s string) bool { return validChars(s, 64, "_-") }

// ValidUserID reports whether s can name a shopper: 1 to 128 characters of
// letters, digits and "_.:@+-".
func ValidUserID(s string) bool { return validChars(s, 128, "_.:@+-") }

// validChars reports whether s has 1 to max bytes, each an ASCII letter, a
// digit or one of extra. It is on every request's path, so no regexp.
func validChars(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte(extra, c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Store is a physical store that can hand out pickup orders.
type Store struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lon  float64 `json:"lon"`
	// WebhookURL, when set, receives the store's hold events as signed
	// webhooks.
	WebhookURL string `json:"webhook_url,omitempty"`
}

// Validate returns an error wrapping ErrInvalid when the store cannot be
// saved.
func (s Store) Validate() error {
	switch {
	case !ValidID(s.ID):
		return fmt.Errorf("%w: store id %q must be 1-64 letters, digits, '_' or '-'", ErrInvalid, s.ID)
	case s.Name == "" || len(s.Name) > 200:
		return fmt.Errorf("%w: store %q needs a name of 1-200 bytes", ErrInvalid, s.ID)
	case !validLatLon(s.Lat, s.Lon):
		return fmt.Errorf("%w: store %q has out-of-range coordinates", ErrInvalid, s.ID)
	case s.WebhookURL != "":
		u, err := url.Parse(s.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s.WebhookURL) > 2000 {
			return fmt.Errorf("%w: store %q webhook_url must be an absolute http(s) URL", ErrInvalid, s.ID)
		}
	}
	return nil
}

func validLatLon(lat, lon float64) bool {
	return !math.IsNaN(lat) && !math.IsNaN(lon) && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}

// SaleState is where a sale stands relative to its window.
type SaleState string

// The states of a sale.
const (
	SaleScheduled SaleState = "scheduled"
	SaleLive      SaleState = "live"
	SaleEnded     SaleState = "ended"
)

// Sale is a timed offer of a limited quantity of one SKU, allocated over
// stores. A sale is immutable once created.
type Sale struct {
	ID           string    `json:"id"`
	SKU          string    `json:"sku"`
	Name         string    `json:"name"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	PerUserLimit int       `json:"per_user_limit"`
	// HoldTTLSeconds is how long a hold stays valid unless confirmed.
	HoldTTLSeconds int            `json:"hold_ttl_seconds"`
	MaxDistanceKm  float64        `json:"max_distance_km"`
	Allocations    map[string]int `json:"allocations"`
	// Quantity caps the global stock below the sum of allocations; 0 means
	// the sum.
	Quantity int `json:"quantity,omitempty"`
	// Stores is the snapshot of the allocated stores taken at creation, so
	// every API instance routes shoppers the same way.
	Stores    []Store   `json:"stores,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// HoldTTL is how long a hold of this sale stays valid unless confirmed.
func (s Sale) HoldTTL() time.Duration { return time.Duration(s.HoldTTLSeconds) * time.Second }

// Total is the sale's global quantity: the sum of allocations, capped by
// Quantity when that is set.
func (s Sale) Total() int {
	sum := 0
	for _, q := range s.Allocations {
		sum += q
	}
	if s.Quantity > 0 && s.Quantity < sum {
		return s.Quantity
	}
	return sum
}

// State returns the sale's state at now.
func (s Sale) State(now time.Time) SaleState {
	switch {
	case now.Before(s.StartsAt):
		return SaleScheduled
	case now.Before(s.EndsAt):
		return SaleLive
	}
	return SaleEnded
}

// normalize fills defaults and validates the sale, returning an error that
// wraps ErrInvalid.
func (s *Sale) normalize() error {
	if !ValidID(s.ID) {
		return fmt.Errorf("%w: sale id %q must be 1-64 letters, digits, '_' or '-'", ErrInvalid, s.ID)
	}
	if s.Name == "" || len(s.Name) > 200 {
		return fmt.Errorf("%w: name must be 1-200 bytes", ErrInvalid)
	}
	if s.SKU == "" {
		s.SKU = s.ID
	}
	if len(s.SKU) > 64 {
		return fmt.Errorf("%w: sku must be at most 64 bytes", ErrInvalid)
	}
	if s.StartsAt.IsZero() || s.EndsAt.IsZero() {
		return fmt.Errorf("%w: starts_at and ends_at are required", ErrInvalid)
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: ends_at must be after starts_at", ErrInvalid)
	}
	if s.PerUserLimit == 0 {
		s.PerUserLimit = DefaultPerUserLimit
	}
	if s.PerUserLimit < 0 || s.PerUserLimit > 1000 {
		return fmt.Errorf("%w: per_user_limit must be 1-1000", ErrInvalid)
	}
	if s.HoldTTLSeconds == 0 {
		s.HoldTTLSeconds = int(DefaultHoldTTL / time.Second)
	}
	if s.HoldTTLSeconds < 1 || s.HoldTTL() > MaxHoldTTL {
		return fmt.Errorf("%w: hold_ttl_seconds must be between 1 and %d", ErrInvalid, int(MaxHoldTTL/time.Second))
	}
	if s.MaxDistanceKm == 0 {
		s.MaxDistanceKm = DefaultMaxDistanceKm
	}
	if math.IsNaN(s.MaxDistanceKm) || s.MaxDistanceKm < 0 || s.MaxDistanceKm > maxDistanceKmLimit {
		return fmt.Errorf("%w: max_distance_km must be in (0, %g]", ErrInvalid, maxDistanceKmLimit)
	}
	if len(s.Allocations) == 0 {
		return fmt.Errorf("%w: allocations must name at least one store", ErrInvalid)
	}
	sum := 0
	for id, q := range s.Allocations {
		if !ValidID(id) {
			return fmt.Errorf("%w: allocation store id %q is malformed", ErrInvalid, id)
		}
		if q < 0 || q > 10_000_000 {
			return fmt.Errorf("%w: allocation for store %q must be 0-10000000", ErrInvalid, id)
		}
		sum += q
	}
	if sum == 0 {
		return fmt.Errorf("%w: allocations sum to zero", ErrInvalid)
	}
	if s.Quantity < 0 || s.Quantity > sum {
		return fmt.Errorf("%w: quantity must be between 1 and the sum of allocations (%d)", ErrInvalid, sum)
	}
	return nil
}

// HoldState is where a hold stands in its life: held → confirmed | cancelled
// | expired.
type HoldState string

// The states of a hold.
const (
	HoldHeld      HoldState = "held"
	HoldConfirmed HoldState = "confirmed"
	HoldCancelled HoldState = "cancelled"
	HoldExpired   HoldState = "expired"
)

// Hold is a reservation of Quantity units of a sale at one store for one
// shopper, valid until ExpiresAt unless confirmed.
type Hold struct {
	ID         string    `json:"hold_id"`
	SaleID     string    `json:"sale_id"`
	StoreID    string    `json:"store_id"`
	UserID     string    `json:"user_id"`
	Quantity   int       `json:"quantity"`
	DistanceKm float64   `json:"distance_km"`
	State      HoldState `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// StoreStock is one store's counts in one sale.
type StoreStock struct {
	StoreID   string `json:"store_id"`
	Initial   int    `json:"initial"`
	Remaining int    `json:"remaining"`
	Held      int    `json:"held"`
	Confirmed int    `json:"confirmed"`
}

// Stock is a sale's global counts and its per-store counts, read in one
// consistent snapshot.
type Stock struct {
	Initial   int                   `json:"initial"`
	Remaining int                   `json:"remaining"`
	Held      int                   `json:"held"`
	Confirmed int                   `json:"confirmed"`
	Stores    map[string]StoreStock `json:"stores"`
}

// Check verifies invariant 1 on a snapshot: for the sale and every store,
// initial = remaining + held + confirmed and no count is negative. It returns
// a description of each violation.
//
// A ledger that derives held as initial - remaining - confirmed, as the
// Redis one does, meets the equality by construction: for it, a negative
// count (an oversell, a unit given back twice) and the stores' sum are
// what Check can catch, and Audit's comparison of held with the hold
// records checks held itself.
func (s Stock) Check() []string {
	var bad []string
	check := func(what string, i, r, h, c int) {
		if r < 0 || h < 0 || c < 0 {
			bad = append(bad, fmt.Sprintf("%s: negative count (remaining %d, held %d, confirmed %d)", what, r, h, c))
		}
		if i != r+h+c {
			bad = append(bad, fmt.Sprintf("%s: initial %d != remaining %d + held %d + confirmed %d", what, i, r, h, c))
		}
	}
	check("global", s.Initial, s.Remaining, s.Held, s.Confirmed)
	sum := 0
	for id, st := range s.Stores {
		check("store "+id, st.Initial, st.Remaining, st.Held, st.Confirmed)
		sum += st.Held + st.Confirmed
	}
	if sum != s.Held+s.Confirmed {
		bad = append(bad, fmt.Sprintf("global held+confirmed %d != sum over stores %d", s.Held+s.Confirmed, sum))
	}
	return bad
}

// Order is a hold as the orders table keeps it, with the store's packing
// mark.
type Order struct {
	Hold
	PackedAt *time.Time `json:"packed_at,omitempty"`
}

// StoreEvent is one entry of a store's notification log: Seq orders a
// store's entries and resumes its live stream, Payload is the event JSON.
type StoreEvent struct {
	Seq     int64
	Type    string
	Payload []byte
}
