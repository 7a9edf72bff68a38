package geo

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Item is something with an id at a point, such as a store.
type Item struct {
	ID    string
	Point Point
}

// Candidate is an item found by Nearest with its distance from the query.
type Candidate struct {
	ID         string
	Point      Point
	DistanceKm float64
}

// Index finds the items nearest a point. It is immutable after NewIndex and
// safe for concurrent use.
type Index struct {
	items     []Item    // grouped by cell
	cosLat    []float64 // cos of each item's latitude, for the haversine
	cells     map[uint64][2]int32
	precision int
	nLat      int // rows of cells
	nLon      int // columns of cells
	cellH     float64
	cellW     float64
}

// Precisions the index chooses from: coarse enough to keep a search to a few
// cells, fine enough not to scan many items per cell.
const minIndexPrecision, maxIndexPrecision = 2, 7

// NewIndex indexes items. It returns an error wrapping ErrInvalidPoint,
// naming the item, when an item has invalid coordinates, and an error for
// an empty or duplicate id.
func NewIndex(items []Item) (*Index, error) {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if it.ID == "" {
			return nil, errors.New("geo: item with an empty id")
		}
		if seen[it.ID] {
			return nil, fmt.Errorf("geo: duplicate item id %q", it.ID)
		}
		seen[it.ID] = true
		if !it.Point.Valid() {
			return nil, fmt.Errorf("item %q: %w", it.ID, ErrInvalidPoint)
		}
	}
	// The finest precision at which occupied cells hold two items or more
	// on average.
	p := minIndexPrecision
	for q := maxIndexPrecision; q > minIndexPrecision; q-- {
		ix := newGrid(q)
		occupied := map[uint64]bool{}
		for _, it := range items {
			occupied[ix.key(ix.cell(it.Point))] = true
		}
		if len(items) >= 2*len(occupied) {
			p = q
			break
		}
	}
	ix := newGrid(p)
	ix.items = slices.Clone(items)
	slices.SortFunc(ix.items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(ix.key(ix.cell(a.Point)), ix.key(ix.cell(b.Point))), cmp.Compare(a.ID, b.ID))
	})
	ix.cells = map[uint64][2]int32{}
	for i := 0; i < len(ix.items); {
		k := ix.key(ix.cell(ix.items[i].Point))
		j := i + 1
		for j < len(ix.items) && ix.key(ix.cell(ix.items[j].Point)) == k {
			j++
		}
		ix.cells[k] = [2]int32{int32(i), int32(j)}
		i = j
	}
	ix.cosLat = make([]float64, len(ix.items))
	for i, it := range ix.items {
		ix.cosLat[i] = math.Cos(rad(it.Point.Lat))
	}
	return ix, nil
}

// newGrid returns an empty index whose cells are the geohash cells of the
// given precision.
func newGrid(precision int) *Index {
	bits := 5 * precision
	latBits, lonBits := bits/2, bits-bits/2
	ix := &Index{precision: precision, nLat: 1 << latBits, nLon: 1 << lonBits}
	ix.cellH = 180 / float64(ix.nLat)
	ix.cellW = 360 / float64(ix.nLon)
	return ix
}

// Len returns the number of items.
func (ix *Index) Len() int { return len(ix.items) }

// Precision returns the geohash precision of the index's cells.
func (ix *Index) Precision() int { return ix.precision }

func (ix *Index) cell(p Point) (int, int) {
	i := int((p.Lat + 90) / ix.cellH)
	j := int((p.Lon + 180) / ix.cellW)
	return min(max(i, 0), ix.nLat-1), min(max(j, 0), ix.nLon-1)
}

func (ix *Index) key(i, j int) uint64 { return uint64(i)*uint64(ix.nLon) + uint64(j) }

// Nearest returns the items within maxKm (inclusive) of p, nearest first,
// ties broken by id, at most k of them (k <= 0: all within maxKm). It
// returns ErrInvalidPoint for an invalid p and an error for a maxKm that
// is not positive.
//
// Distances are haversine distances; an item's cos(latitude) is computed
// once at indexing. With k > 0 a search keeps only the k nearest found so
// far, and takes the arcsine only of an item whose haversine term does not
// already put it clearly beyond the k-th.
func (ix *Index) Nearest(p Point, maxKm float64, k int) ([]Candidate, error) {
	if !p.Valid() {
		return nil, ErrInvalidPoint
	}
	if !(maxKm > 0) {
		return nil, fmt.Errorf("geo: radius must be positive, got %v", maxKm)
	}
	if len(ix.items) == 0 {
		return nil, nil
	}
	q := ix.query(p, maxKm)
	i0, j0 := ix.cell(p)
	var out []ranked
	if k > 0 {
		out = make([]ranked, 0, min(k, len(ix.items)))
	}
	// Visiting more empty cells than there are items costs more than
	// scanning every item, so past that budget fall back to the scan.
	budget := 4*len(ix.items) + 64
	visited := 0
	scan := func(i, j int) {
		visited++
		r, ok := ix.cells[ix.key(i, j)]
		if !ok {
			return
		}
		for n := r[0]; n < r[1]; n++ {
			if k > 0 && len(out) == k && q.below(ix, int(n)) > out[k-1].h*(1+1e-9) {
				continue // clearly farther than the k-th: no sine needed
			}
			if h := q.h(ix, int(n)); h <= q.hMax {
				out = ix.keep(out, ranked{n: n, h: h}, k)
			}
		}
	}
	maxRing := max(ix.nLat, ix.nLon/2+1)
	for r := 0; r <= maxRing; r++ {
		ix.ring(i0, j0, r, scan)
		if visited > budget {
			return ix.scanAll(p, maxKm, k), nil
		}
		bound := ix.ringBound(p, r+1)
		if bound > maxKm {
			break
		}
		// Every item not yet visited is at least bound away.
		if k > 0 && len(out) == k && out[k-1].d < bound {
			break
		}
	}
	return ix.finish(out, maxKm, k), nil
}

// query is what a search computes once about its point.
type query struct {
	p      Point
	cosLat float64
	hMax   float64 // h of maxKm, with a hair of slack: finish checks exactly
}

func (ix *Index) query(p Point, maxKm float64) query {
	s := math.Sin(math.Min(maxKm/(2*EarthRadiusKm), math.Pi/2))
	return query{p: p, cosLat: math.Cos(rad(p.Lat)), hMax: s*s*(1+1e-9) + 1e-15}
}

// h is the haversine's inner term between the query point and item n,
// computed exactly as Haversine computes it, so that hToKm(h) equals the
// haversine distance bit for bit.
func (q query) h(ix *Index, n int) float64 {
	b := ix.items[n].Point
	dLat := rad(b.Lat - q.p.Lat)
	dLon := rad(b.Lon - q.p.Lon)
	s1, s2 := math.Sin(dLat/2), math.Sin(dLon/2)
	h := s1*s1 + q.cosLat*ix.cosLat[n]*s2*s2
	return math.Min(h, 1)
}

// below is a lower bound on h(ix, n) without a sine: sin x >= x - x³/6
// for 0 <= x <= 1 (and a half-difference above 1 contributes 0).
func (q query) below(ix *Index, n int) float64 {
	b := ix.items[n].Point
	x := math.Abs(rad(b.Lat-q.p.Lat)) / 2
	y := math.Abs(rad(b.Lon-q.p.Lon)) / 2
	var h float64
	if x <= 1 {
		s := x - x*x*x/6
		h = s * s
	}
	if y <= 1 {
		s := y - y*y*y/6
		h += q.cosLat * ix.cosLat[n] * s * s
	}
	return h
}

func hToKm(h float64) float64 { return 2 * EarthRadiusKm * math.Asin(math.Sqrt(h)) }

// ranked is an item found by a search, the haversine term of its distance
// and the distance.
type ranked struct {
	n    int32
	h, d float64
}

// before orders found items nearest first, ties by id.
func (ix *Index) before(a, b ranked) bool {
	if a.d != b.d {
		return a.d < b.d
	}
	return ix.items[a.n].ID < ix.items[b.n].ID
}

// keep adds r, whose distance is not yet computed, to out. With k > 0, out
// is kept sorted and at most k long, so that a search does no sorting and
// keeps nothing it will drop; otherwise r is appended and finish sorts.
func (ix *Index) keep(out []ranked, r ranked, k int) []ranked {
	if k > 0 && len(out) == k && r.h > out[k-1].h*(1+1e-9) {
		// The haversine term grows with the distance and this one is too
		// far above the k-th's for any rounding to make r as near.
		return out
	}
	r.d = hToKm(r.h)
	if k <= 0 {
		return append(out, r)
	}
	if len(out) == k {
		if !ix.before(r, out[k-1]) {
			return out
		}
		out = out[:k-1]
	}
	i := len(out)
	out = append(out, r)
	for ; i > 0 && ix.before(r, out[i-1]); i-- {
		out[i] = out[i-1]
	}
	out[i] = r
	return out
}

// finish turns found items into candidates within maxKm, nearest first.
func (ix *Index) finish(out []ranked, maxKm float64, k int) []Candidate {
	if k <= 0 {
		slices.SortFunc(out, func(a, b ranked) int {
			if ix.before(a, b) {
				return -1
			}
			if ix.before(b, a) {
				return 1
			}
			return 0
		})
	}
	res := make([]Candidate, 0, len(out))
	for _, r := range out {
		if r.d > maxKm {
			break
		}
		it := ix.items[r.n]
		res = append(res, Candidate{ID: it.ID, Point: it.Point, DistanceKm: r.d})
	}
	return res
}

// ring calls visit for every cell at Chebyshev distance exactly r from
// (i0, j0), columns wrapping around the antimeridian and rows clipped at the
// poles, each cell once.
func (ix *Index) ring(i0, j0, r int, visit func(i, j int)) {
	allCols := 2*r+1 >= ix.nLon
	for di := -r; di <= r; di++ {
		i := i0 + di
		if i < 0 || i >= ix.nLat {
			continue
		}
		if di == -r || di == r {
			if allCols {
				for j := range ix.nLon {
					if colDist(j, j0, ix.nLon) <= r {
						visit(i, j)
					}
				}
			} else {
				for dj := -r; dj <= r; dj++ {
					visit(i, wrap(j0+dj, ix.nLon))
				}
			}
			continue
		}
		// Inner rows: only the columns exactly r away.
		if 2*r > ix.nLon {
			continue // no column is that far on a circle of nLon columns
		}
		a, b := wrap(j0-r, ix.nLon), wrap(j0+r, ix.nLon)
		visit(i, a)
		if b != a {
			visit(i, b)
		}
	}
}

func wrap(j, n int) int { return ((j % n) + n) % n }

// colDist is the distance between two columns on a circle of n columns.
func colDist(a, b, n int) int {
	d := wrap(a-b, n)
	return min(d, n-d)
}

// ringBound is a lower bound on the distance from p to any point in a cell
// at ring r or beyond: such a cell is at least r-1 whole rows or r-1 whole
// columns from p's cell.
func (ix *Index) ringBound(p Point, r int) float64 {
	if r <= 1 {
		return 0
	}
	dLat := float64(r-1) * ix.cellH
	latKm := EarthRadiusKm * rad(min(dLat, 180))
	dLon := min(float64(r-1)*ix.cellW, 180)
	// Distance from p to the meridian dLon away: asin(cos φ · sin Δλ);
	// past 90° the nearest point is the pole on p's side.
	lonKm := EarthRadiusKm * math.Asin(math.Min(1, math.Cos(rad(p.Lat))*math.Sin(rad(math.Min(dLon, 90)))))
	// Shave a hair off for floating-point error: a bound must never exceed
	// a true distance.
	return math.Min(latKm, lonKm)*(1-1e-9) - 1e-9
}

// scanAll is the exact brute-force answer.
func (ix *Index) scanAll(p Point, maxKm float64, k int) []Candidate {
	q := ix.query(p, maxKm)
	var out []ranked
	for n := range ix.items {
		if h := q.h(ix, n); h <= q.hMax {
			out = ix.keep(out, ranked{n: int32(n), h: h}, k)
		}
	}
	return ix.finish(out, maxKm, k)
}
