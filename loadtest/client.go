package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// client calls the deployment's operator API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// call sends in as JSON (unless nil) with the admin token, and decodes the
// answer into out when its status is want. Otherwise it returns an error
// naming the request and the API's error code and message.
func (c *client) call(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: %s: %s: %s", method, path, resp.Status, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s: %.200q", method, path, resp.Status, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// sale is the sale under attack.
type sale struct {
	id      string
	created bool
	stores  []Point
	units   int
}

// createSales creates the run's stores and cfg.Sales sales over them, of
// the given units each, that start after cfg.StartIn and neither end nor
// let a hold expire during an attack of length d. One sale is named
// lt-<run>, several lt-<run>-s1, lt-<run>-s2, …; the stores are
// lt-<run>-1, lt-<run>-2, ….
func (c *client) createSales(ctx context.Context, cfg *Config, run string, units int, d time.Duration) ([]sale, error) {
	type storeBody struct {
		ID   string  `json:"id"`
		Name string  `json:"name"`
		Lat  float64 `json:"lat"`
		Lon  float64 `json:"lon"`
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	stores := make([]storeBody, cfg.Stores)
	points := make([]Point, cfg.Stores)
	alloc := make(map[string]int, cfg.Stores)
	for i := range stores {
		p := randomPoint(rng, cfg.Center, cfg.RadiusKm)
		id := "lt-" + run + "-" + strconv.Itoa(i+1)
		stores[i] = storeBody{ID: id, Name: "Load test " + run + " store " + strconv.Itoa(i+1), Lat: p.Lat, Lon: p.Lon}
		alloc[id] = units / cfg.Stores
		if i < units%cfg.Stores {
			alloc[id]++
		}
		points[i] = p
	}
	if err := c.call(ctx, http.MethodPost, "/v1/stores", stores, &struct{}{}, http.StatusOK); err != nil {
		return nil, fmt.Errorf("create stores: %w", err)
	}
	start := time.Now().Add(cfg.StartIn).UTC()
	// Long enough that no hold expires and the sale does not end before
	// the audit, even when answers are slow.
	margin := d + cfg.StartIn + 10*time.Minute
	ttl := min(int(margin/time.Second)+1, 7*24*3600)
	sales := make([]sale, cfg.Sales)
	for i := range sales {
		s := sale{id: "lt-" + run, created: true, units: units, stores: points}
		if cfg.Sales > 1 {
			s.id += "-s" + strconv.Itoa(i+1)
		}
		body := map[string]any{
			"id": s.id, "sku": s.id, "name": "Load test " + s.id[len("lt-"):],
			"starts_at": start, "ends_at": start.Add(margin),
			"per_user_limit": cfg.PerUserLimit, "hold_ttl_seconds": ttl, "max_distance_km": cfg.MaxDistanceKm,
			"allocations": alloc,
		}
		if err := c.call(ctx, http.MethodPost, "/v1/sales", body, &struct{}{}, http.StatusCreated); err != nil {
			return nil, fmt.Errorf("create sale %s: %w", s.id, err)
		}
		sales[i] = s
	}
	return sales, nil
}

// existingSale reads a sale's stores and stock.
func (c *client) existingSale(ctx context.Context, id string) (sale, error) {
	var v struct {
		State  string  `json:"state"`
		Stores []Point `json:"stores"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/sales/"+id, nil, &v, http.StatusOK); err != nil {
		return sale{}, fmt.Errorf("read sale: %w", err)
	}
	if v.State == "ended" {
		return sale{}, fmt.Errorf("sale %s has ended", id)
	}
	if len(v.Stores) == 0 {
		return sale{}, fmt.Errorf("sale %s lists no stores to place shoppers around", id)
	}
	st, err := c.stock(ctx, id)
	if err != nil {
		return sale{}, err
	}
	return sale{id: id, stores: v.Stores, units: st.Remaining}, nil
}

// counts are a sale's or a store's stock counts.
type counts struct {
	Initial   int `json:"initial"`
	Remaining int `json:"remaining"`
	Held      int `json:"held"`
	Confirmed int `json:"confirmed"`
}

// stock is the answer of GET /v1/sales/{id}/stock.
type stock struct {
	counts
	Stores map[string]counts `json:"stores"`
}

func (c *client) stock(ctx context.Context, saleID string) (stock, error) {
	var st stock
	if err := c.call(ctx, http.MethodGet, "/v1/sales/"+saleID+"/stock", nil, &st, http.StatusOK); err != nil {
		return stock{}, fmt.Errorf("read stock: %w", err)
	}
	return st, nil
}
