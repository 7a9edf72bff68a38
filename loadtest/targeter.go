package loadtest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/flashsale/flashsale/geo"
)

// randomPoint returns a point uniformly distributed within radiusKm of c,
// rounded to 5 decimals (about a metre).
func randomPoint(rng *rand.Rand, c Point, radiusKm float64) Point {
	d := radiusKm * math.Sqrt(rng.Float64()) / geo.EarthRadiusKm // angular distance
	bearing := 2 * math.Pi * rng.Float64()
	la1, lo1 := c.Lat*math.Pi/180, c.Lon*math.Pi/180
	la2 := math.Asin(math.Sin(la1)*math.Cos(d) + math.Cos(la1)*math.Sin(d)*math.Cos(bearing))
	lo2 := lo1 + math.Atan2(math.Sin(bearing)*math.Sin(d)*math.Cos(la1), math.Cos(d)-math.Sin(la1)*math.Sin(la2))
	lon := math.Mod(lo2*180/math.Pi+540, 360) - 180
	return Point{Lat: round5(la2 * 180 / math.Pi), Lon: round5(lon)}
}

func round5(x float64) float64 { return math.Round(x*1e5) / 1e5 }

// recentShoppers is how many of the latest shoppers a retry picks from:
// clients retry soon after their first try.
const recentShoppers = 1000

// shopper is one first-time request, kept so that it can be retried
// exactly.
type shopper struct {
	url  string
	key  string
	body []byte
}

// saleTarget is a sale under attack: its reservations URL and the stores
// its shoppers stand around.
type saleTarget struct {
	url    string
	stores []Point
}

// targeter makes the attack's reservation requests: each a new shopper of
// a random sale at a random point around a random store of it, or, with
// probability retryShare, an exact repeat of one of the latest shoppers'
// requests. It is safe for concurrent use, as vegeta requires.
type targeter struct {
	sales      []saleTarget
	radiusKm   float64
	retryShare float64
	prefix     string // of user ids and keys, unique to the run

	mu      sync.Mutex
	rng     *rand.Rand
	n       int       // shoppers so far
	recent  []shopper // ring of the latest shoppers
	retries int
}

func newTargeter(sales []saleTarget, radiusKm, retryShare float64, prefix string, seed uint64) *targeter {
	return &targeter{sales: sales, radiusKm: radiusKm, retryShare: retryShare, prefix: prefix,
		rng: rand.New(rand.NewPCG(seed, 2))}
}

// target is the vegeta.Targeter.
func (g *targeter) target(t *vegeta.Target) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s shopper
	if len(g.recent) > 0 && g.rng.Float64() < g.retryShare {
		s = g.recent[g.rng.IntN(len(g.recent))]
		g.retries++
	} else {
		s = g.next()
	}
	*t = vegeta.Target{Method: http.MethodPost, URL: s.url, Body: s.body,
		Header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {s.key}}}
	return nil
}

// next makes a new shopper and remembers it for retries.
func (g *targeter) next() shopper {
	g.n++
	id := strconv.Itoa(g.n)
	sale := g.sales[g.rng.IntN(len(g.sales))]
	p := randomPoint(g.rng, sale.stores[g.rng.IntN(len(sale.stores))], g.radiusKm)
	body, _ := json.Marshal(struct {
		UserID string  `json:"user_id"`
		Lat    float64 `json:"lat"`
		Lon    float64 `json:"lon"`
	}{g.prefix + "u" + id, p.Lat, p.Lon}) // cannot fail
	s := shopper{url: sale.url, key: g.prefix + "k" + id, body: body}
	if len(g.recent) < recentShoppers {
		g.recent = append(g.recent, s)
	} else {
		g.recent[g.n%recentShoppers] = s
	}
	return s
}

// retried returns how many targets were retries.
func (g *targeter) retried() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.retries
}
