package geo

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
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

// Index finds the items nearest a point. Its items are fixed by NewIndex;
// it is safe for concurrent use.
type Index struct {
	items     []Item // grouped by cell
	trig      []trig // of each item, for the haversine
	cells     map[uint64][2]int32
	precision int
	nLat      int // rows of cells
	nLon      int // columns of cells
	cellH     float64
	cellW     float64

	// The item sets of small cells, for searches with k > 0 (see
	// cellItems): a grid finer than the index's, so that a set holds few
	// more than k items.
	fine *Index // its cells only
	sets cellSets
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
	ix.fine = newGrid(p + cacheFiner)
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
	ix.trig = make([]trig, len(ix.items))
	for i, it := range ix.items {
		ix.trig[i] = trigOf(it.Point)
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
// already put it clearly beyond the k-th. For a few nearest (0 < k <=
// maxCachedK), the first search from a small cell works out which items
// can be among the k nearest of any point of that cell, and later searches
// from the cell look at those only (see cellItems).
func (ix *Index) Nearest(p Point, maxKm float64, k int) ([]Candidate, error) {
	return NearestAs(ix, p, maxKm, k, func(it Item, d float64) Candidate {
		return Candidate{ID: it.ID, Point: it.Point, DistanceKm: d}
	})
}

// NearestAs is Nearest with each item found, and its distance from p,
// made into a T by as: a caller with a type of its own for candidates
// gets them in one slice, not a copy of Nearest's.
func NearestAs[T any](ix *Index, p Point, maxKm float64, k int, as func(it Item, distKm float64) T) ([]T, error) {
	if !p.Valid() {
		return nil, ErrInvalidPoint
	}
	if !(maxKm > 0) {
		return nil, fmt.Errorf("geo: radius must be positive, got %v", maxKm)
	}
	if len(ix.items) == 0 {
		return nil, nil
	}
	if k > 0 && k <= maxCachedK {
		if items, ok := ix.cellItems(p, maxKm, k); ok {
			q := ix.query(p, maxKm)
			var buf [maxCachedK]ranked // k is at most that: no allocation
			out := buf[:0:min(k, len(items))]
			for _, n := range items {
				out = ix.consider(q, out, n, k)
			}
			return found(ix, ix.finish(out, maxKm, k), as), nil
		}
	}
	return found(ix, ix.search(p, maxKm, k), as), nil
}

// search finds the items within maxKm of p, nearest first, at most k
// (k <= 0: all), by visiting the grid's cells in rings around p's.
func (ix *Index) search(p Point, maxKm float64, k int) []ranked {
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
			out = ix.consider(q, out, n, k)
		}
	}
	maxRing := max(ix.nLat, ix.nLon/2+1)
	for r := 0; r <= maxRing; r++ {
		ix.ring(i0, j0, r, scan)
		if visited > budget {
			return ix.scanAll(p, maxKm, k)
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
	return ix.finish(out, maxKm, k)
}

// consider adds item n to out if it is within the query's radius and, with
// k > 0, among the k nearest so far.
func (ix *Index) consider(q query, out []ranked, n int32, k int) []ranked {
	if k > 0 && len(out) == k && q.below(ix, int(n)) > out[k-1].h*(1+1e-9)+hSlack {
		return out // clearly farther than the k-th: no sine needed
	}
	if h := q.h(ix, int(n)); h <= q.hMax {
		out = ix.keep(out, ranked{n: n, h: h}, k)
	}
	return out
}

// maxCachedCells bounds how many cells' item sets one index keeps; past
// it, searches from other cells visit the grid as if there were no cache.
// cacheFiner is how many geohash characters finer than the index's the
// cached cells are (each one 32 times smaller in area). Searches for more
// than maxCachedK items are listings, not a reservation's few nearest
// stores: they are not cached, so that listings with many different
// limits cannot fill the cache and leave reservations without it.
const (
	maxCachedCells = 4096
	cacheFiner     = 2
	maxCachedK     = 16
)

// cellKey names the item set of one cell for one radius and k.
type cellKey struct {
	cell  uint64
	maxKm float64
	k     int
}

// cellItems returns the items that can be among the k nearest within maxKm
// of any point of p's cell of the fine grid, working them out on the
// cell's first search.
// It returns false when the cell has no set and the cache is full.
//
// For a cell whose centre is c and whose every point is within r of c, and
// any point p of it, the triangle inequality bounds each distance:
// d(c,s) - r <= d(p,s) <= d(c,s) + r. The k items nearest c are then all
// within d_k + r of p (d_k: the k-th's distance from c), so an item s with
// d(c,s) - r > d_k + r is farther from p than k others; and one with
// d(c,s) - r > maxKm is out of reach. The set is every item within
// min(maxKm, d_k + r) + r of c (maxKm + r when fewer than k are near
// enough to tell): it holds the answer for every point of the cell, which
// the search then computes exactly, as without the set.
func (ix *Index) cellItems(p Point, maxKm float64, k int) ([]int32, bool) {
	g := ix.fine
	i, j := g.cell(p)
	key := cellKey{cell: g.key(i, j), maxKm: maxKm, k: k}
	if items, ok := ix.sets.get(key); ok {
		return items, true
	}
	if ix.sets.full() {
		return nil, false
	}
	box := Box{MinLat: float64(i)*g.cellH - 90, MaxLat: float64(i+1)*g.cellH - 90,
		MinLon: float64(j)*g.cellW - 180, MaxLon: float64(j+1)*g.cellW - 180}
	box.MaxLat = min(box.MaxLat, 90)
	box.MaxLon = min(box.MaxLon, 180)
	c := box.Center()
	// The farthest point of a cell from its centre is a corner: along a
	// parallel the distance grows with the difference in longitude, along
	// a meridian it has one minimum, and inside no maximum (a cell is far
	// smaller than a hemisphere). A hair is added for rounding.
	var r float64
	for _, corner := range [...]Point{{box.MinLat, box.MinLon}, {box.MinLat, box.MaxLon}, {box.MaxLat, box.MinLon}, {box.MaxLat, box.MaxLon}} {
		r = max(r, Haversine(c, corner))
	}
	r = r*(1+1e-9) + 1e-9
	reach := maxKm + r
	if near := ix.search(c, maxKm+2*r, k); len(near) == k {
		reach = min(maxKm, near[k-1].d+r) + r
	}
	found := ix.search(c, reach*(1+1e-9)+1e-9, 0)
	items := make([]int32, len(found))
	for x, f := range found {
		items[x] = f.n
	}
	return ix.sets.add(key, items)
}

// cellSets holds the item sets of at most maxCachedCells cells in an
// open-addressed table (a set goes in the first free slot from its key's
// hash on) at most half full, which doubles as sets are added and never
// loses one: a search finds its cell's set with a hash and an atomic load
// or two, with no lock, no interface and no tree to walk, which matters
// because every reservation looks one up. Adds, rare (each follows a
// search of its own), take a lock.
type cellSets struct {
	table atomic.Pointer[[]atomic.Pointer[cellSet]]
	n     atomic.Int64 // sets added; written under mu
	mu    sync.Mutex
}

type cellSet struct {
	key   cellKey
	items []int32
}

func (k cellKey) hash() uint64 {
	h := k.cell*0x9e3779b97f4a7c15 ^ math.Float64bits(k.maxKm)*0xc2b2ae3d27d4eb4f ^ uint64(k.k)*0x165667b19e3779f9
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>32
}

// find returns key's set in table, or nil and the free slot where it
// would go.
func find(table []atomic.Pointer[cellSet], key cellKey) (*cellSet, int) {
	mask := uint64(len(table) - 1) // a power of two
	for i := key.hash() & mask; ; i = (i + 1) & mask {
		e := table[i].Load()
		if e == nil {
			return nil, int(i)
		}
		if e.key == key {
			return e, int(i)
		}
	}
}

// get returns the set of key, if it has one.
func (t *cellSets) get(key cellKey) ([]int32, bool) {
	table := t.table.Load()
	if table == nil {
		return nil, false
	}
	if e, _ := find(*table, key); e != nil {
		return e.items, true
	}
	return nil, false
}

// full tells whether the table holds as many sets as it may.
func (t *cellSets) full() bool { return t.n.Load() >= maxCachedCells }

// add puts key's set in the table, unless another search put one first
// (then it returns that one) or the table is full (then ok is false).
func (t *cellSets) add(key cellKey, items []int32) ([]int32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var table []atomic.Pointer[cellSet]
	if p := t.table.Load(); p != nil {
		table = *p
		if e, _ := find(table, key); e != nil {
			return e.items, true
		}
	}
	n := int(t.n.Load())
	if n >= maxCachedCells {
		return nil, false
	}
	if 2*(n+1) > len(table) {
		// Searches go on in the old table meanwhile: it keeps every set
		// it has, and one that misses a set added since adds it again,
		// which finds it here.
		bigger := make([]atomic.Pointer[cellSet], max(16, 2*len(table)))
		for i := range table {
			if e := table[i].Load(); e != nil {
				_, free := find(bigger, e.key)
				bigger[free].Store(e)
			}
		}
		table = bigger
		t.table.Store(&table)
	}
	_, free := find(table, key)
	table[free].Store(&cellSet{key: key, items: items})
	t.n.Store(int64(n + 1))
	return items, true
}

// query is what a search computes once about its point.
type query struct {
	p    Point
	trig trig
	hMax float64 // h of maxKm, with a hair of slack: finish checks exactly
}

func (ix *Index) query(p Point, maxKm float64) query {
	s := math.Sin(math.Min(maxKm/(2*EarthRadiusKm), math.Pi/2))
	return query{p: p, trig: trigOf(p), hMax: s*s*(1+1e-9) + 1e-15}
}

// h is the haversine's inner term between the query point and item n,
// computed exactly as Haversine computes it, so that hToKm(h) equals the
// haversine distance bit for bit.
func (q query) h(ix *Index, n int) float64 { return haversineTerm(q.trig, ix.trig[n]) }

// below is a lower bound on the exact haversine term between the query
// point and item n, without a sine: sin x >= x - x³/6 for 0 <= x <= 1 (and
// a half-difference above 1 contributes 0). h, as computed, can be below
// the exact term by a few units in the last place of 1 (see
// haversineTerm): comparisons against it allow hSlack for that.
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
		h += q.trig.cosLat * ix.trig[n].cosLat * s * s
	}
	return h
}

// hSlack bounds how far a computed haversine term can fall below the
// exact one: each sine of a half difference is within 2e-15 of exact, and
// h is at most 1.
const hSlack = 1e-14

// ranked is an item found by a search, the haversine term of its distance
// and the distance.
type ranked struct {
	n    int32
	h, d float64
}

// compare orders found items nearest first, ties by id.
func (ix *Index) compare(a, b ranked) int {
	if c := cmp.Compare(a.d, b.d); c != 0 {
		return c
	}
	return cmp.Compare(ix.items[a.n].ID, ix.items[b.n].ID)
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
		if ix.compare(r, out[k-1]) >= 0 {
			return out
		}
		out = out[:k-1]
	}
	i := len(out)
	out = append(out, r)
	for ; i > 0 && ix.compare(r, out[i-1]) < 0; i-- {
		out[i] = out[i-1]
	}
	out[i] = r
	return out
}

// finish sorts found items nearest first (when keep has not) and drops
// those past maxKm.
func (ix *Index) finish(out []ranked, maxKm float64, k int) []ranked {
	if k <= 0 {
		slices.SortFunc(out, ix.compare)
	}
	for x, r := range out {
		if r.d > maxKm {
			return out[:x]
		}
	}
	return out
}

// found turns found items into Ts.
func found[T any](ix *Index, out []ranked, as func(Item, float64) T) []T {
	res := make([]T, len(out))
	for x, r := range out {
		res[x] = as(ix.items[r.n], r.d)
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
func (ix *Index) scanAll(p Point, maxKm float64, k int) []ranked {
	q := ix.query(p, maxKm)
	var out []ranked
	for n := range ix.items {
		out = ix.consider(q, out, int32(n), k)
	}
	return ix.finish(out, maxKm, k)
}
