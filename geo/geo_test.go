package geo

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestEncodeKnownValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p    Point
		prec int
		want string
	}{
		{Point{57.64911, 10.40744}, 11, "u4pruydqqvj"},
		{Point{42.6, -5.6}, 5, "ezs42"},
		{Point{0, 0}, 1, "s"},
		{Point{-90, -180}, 4, "0000"},
		{Point{90, 180}, 4, "zzzz"},
		{Point{91, 0}, 5, ""},
		{Point{math.NaN(), 0}, 5, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.p, c.prec), func(t *testing.T) {
			if got := Encode(c.p, c.prec); got != c.want {
				t.Fatalf("Encode(%v, %d) = %q, want %q", c.p, c.prec, got, c.want)
			}
		})
	}
}

func TestDecodeBoxRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		p := Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}
		prec := 1 + rng.IntN(MaxPrecision)
		h := Encode(p, prec)
		b, err := DecodeBox(h)
		if err != nil {
			t.Fatal(err)
		}
		if p.Lat < b.MinLat || p.Lat > b.MaxLat || p.Lon < b.MinLon || p.Lon > b.MaxLon {
			t.Fatalf("%v not inside the box %+v of %q", p, b, h)
		}
		if Encode(b.Center(), prec) != h {
			t.Fatalf("centre of %q encodes to %q", h, Encode(b.Center(), prec))
		}
	}
	for _, bad := range []string{"", "u4pa", "abc", "u4pruydqqvjxx", "U4"} {
		if _, err := DecodeBox(bad); !errors.Is(err, ErrInvalidGeohash) {
			t.Fatalf("DecodeBox(%q) = %v, want ErrInvalidGeohash", bad, err)
		}
	}
}

func TestNeighbors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		hash string
		want []string // nil: only check the count
		n    int
	}{
		// Known neighbours of ezs42 (north, north-east, east, ...).
		{"mid latitude", "ezs42", []string{"ezs48", "ezs49", "ezs43", "ezs41", "ezs40", "ezefp", "ezefr", "ezefx"}, 8},
		{"east edge wraps to the west", "xbpb", nil, 8},
		{"west edge wraps to the east", "0000", nil, 5},
		{"north pole row", "zzzz", nil, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Neighbors(c.hash)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.n {
				t.Fatalf("Neighbors(%q) = %v, want %d cells", c.hash, got, c.n)
			}
			if c.want != nil {
				g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(c.want))
				if !slices.Equal(g, w) {
					t.Fatalf("Neighbors(%q) = %v, want %v", c.hash, g, w)
				}
			}
			seen := map[string]bool{}
			for _, n := range got {
				if n == c.hash || seen[n] || len(n) != len(c.hash) {
					t.Fatalf("Neighbors(%q) has a bad cell %q in %v", c.hash, n, got)
				}
				seen[n] = true
				// Every neighbour touches the cell (wrapping longitude).
				a, _ := DecodeBox(c.hash)
				b, _ := DecodeBox(n)
				if b.MinLat > a.MaxLat+1e-9 || b.MaxLat < a.MinLat-1e-9 {
					t.Fatalf("%q does not touch %q in latitude", n, c.hash)
				}
			}
		})
	}
	t.Run("antimeridian", func(t *testing.T) {
		east := Encode(Point{10, 179.99}, 5)
		west := Encode(Point{10, -179.99}, 5)
		got, _ := Neighbors(east)
		if !slices.Contains(got, west) {
			t.Fatalf("neighbours of %q (lon 179.99) %v lack %q (lon -179.99)", east, got, west)
		}
	})
	if _, err := Neighbors("!"); !errors.Is(err, ErrInvalidGeohash) {
		t.Fatalf("bad hash: %v", err)
	}
}

func TestHaversine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a, b Point
		want float64
		tol  float64
	}{
		{"Paris-London", Point{48.8566, 2.3522}, Point{51.5074, -0.1278}, 343.5, 0.5},
		{"zero", Point{10, 10}, Point{10, 10}, 0, 1e-9},
		{"antipodes", Point{0, 0}, Point{0, 180}, math.Pi * EarthRadiusKm, 0.01},
		{"poles", Point{90, 0}, Point{-90, 0}, math.Pi * EarthRadiusKm, 0.01},
		{"across the antimeridian", Point{0, 179.99}, Point{0, -179.99}, 2.224, 0.01},
		{"pole with any longitude", Point{90, 0}, Point{90, 123}, 0, 1e-6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Haversine(c.a, c.b); math.Abs(got-c.want) > c.tol {
				t.Fatalf("Haversine = %v, want %v ± %v", got, c.want, c.tol)
			}
		})
	}
}

// bruteNearest is the reference answer.
func bruteNearest(items []Item, p Point, maxKm float64, k int) []string {
	var c []Candidate
	for _, it := range items {
		if d := Haversine(p, it.Point); d <= maxKm {
			c = append(c, Candidate{ID: it.ID, DistanceKm: d})
		}
	}
	slices.SortFunc(c, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(a.DistanceKm, b.DistanceKm), cmp.Compare(a.ID, b.ID))
	})
	if k > 0 && len(c) > k {
		c = c[:k]
	}
	ids := make([]string, len(c))
	for i := range c {
		ids[i] = c[i].ID
	}
	return ids
}

func ids(c []Candidate) []string {
	out := make([]string, len(c))
	for i := range c {
		out[i] = c[i].ID
	}
	return out
}

func mustIndex(t testing.TB, items []Item) *Index {
	t.Helper()
	ix, err := NewIndex(items)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestNearestEdgeCases(t *testing.T) {
	t.Parallel()
	items := []Item{
		{"east", Point{0, 179.99}},
		{"west", Point{0, -179.99}},
		{"north1", Point{89.99, 0}},
		{"north2", Point{89.99, 180}},
		{"south", Point{-89.95, 45}},
		{"berlin", Point{52.52, 13.405}},
		{"potsdam", Point{52.39, 13.06}},
		{"tie-a", Point{10, 10.01}},
		{"tie-b", Point{10, 9.99}},
	}
	ix := mustIndex(t, items)
	cases := []struct {
		name  string
		p     Point
		maxKm float64
		k     int
		want  []string
	}{
		{"antimeridian from the east", Point{0, 179.995}, 5, 0, []string{"east", "west"}},
		{"antimeridian from the west", Point{0, -179.999}, 5, 0, []string{"west", "east"}},
		{"north pole across longitudes", Point{90, 0}, 5, 0, []string{"north1", "north2"}},
		{"near the south pole", Point{-90, -170}, 10, 0, []string{"south"}},
		{"nearest only", Point{52.5, 13.4}, 100, 1, []string{"berlin"}},
		{"radius excludes everything", Point{52.5, 13.4}, 0.001, 0, []string{}},
		{"k larger than the index", Point{52.5, 13.4}, 30000, 100, bruteNearest(items, Point{52.5, 13.4}, 30000, 0)},
		{"ties by id", Point{10, 10}, 5, 0, []string{"tie-a", "tie-b"}},
		{"radius boundary inclusive", Point{52.52, 13.405}, Haversine(Point{52.52, 13.405}, Point{52.39, 13.06}), 0, []string{"berlin", "potsdam"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ix.Nearest(c.p, c.maxKm, c.k)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !slices.Equal(g, c.want) {
				t.Fatalf("Nearest = %v, want %v", g, c.want)
			}
		})
	}
	for _, p := range []Point{{math.NaN(), 0}, {91, 0}, {0, 181}, {math.Inf(1), 0}, {-90.0001, 0}} {
		if _, err := ix.Nearest(p, 10, 1); !errors.Is(err, ErrInvalidPoint) {
			t.Fatalf("Nearest(%v) = %v, want ErrInvalidPoint", p, err)
		}
	}
	for _, r := range []float64{0, -1, math.NaN()} {
		if _, err := ix.Nearest(Point{0, 0}, r, 1); err == nil {
			t.Fatalf("radius %v accepted", r)
		}
	}
	empty := mustIndex(t, nil)
	if got, err := empty.Nearest(Point{0, 0}, 100, 3); err != nil || len(got) != 0 {
		t.Fatalf("empty index: %v %v", got, err)
	}
	if _, err := NewIndex([]Item{{"x", Point{0, 200}}}); !errors.Is(err, ErrInvalidPoint) {
		t.Fatalf("invalid item: %v", err)
	}
	if _, err := NewIndex([]Item{{"x", Point{0, 0}}, {"x", Point{1, 1}}}); err == nil {
		t.Fatal("duplicate ids accepted")
	}
}

// TestNearestMatchesBruteForce compares the index with a brute-force scan on
// random layouts, points, radii and k.
func TestNearestMatchesBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 11))
	around := func(c Point, spreadDeg float64) Point {
		lat := math.Max(-90, math.Min(90, c.Lat+(rng.Float64()*2-1)*spreadDeg))
		lon := c.Lon + (rng.Float64()*2-1)*spreadDeg
		for lon > 180 {
			lon -= 360
		}
		for lon < -180 {
			lon += 360
		}
		return Point{lat, lon}
	}
	layouts := map[string]func() Point{
		"dense city":        func() Point { return around(Point{52.52, 13.405}, 0.3) },
		"global":            func() Point { return Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180} },
		"antimeridian":      func() Point { return around(Point{-17, 180}, 1.5) },
		"north pole":        func() Point { return around(Point{89.5, 0}, 1) },
		"south pole":        func() Point { return around(Point{-89.7, 120}, 0.6) },
		"two far clusters":  func() Point { return around([]Point{{40.7, -74}, {35.7, 139.7}}[rng.IntN(2)], 0.2) },
		"single cell stack": func() Point { return around(Point{1, 1}, 0.0001) },
	}
	for name, gen := range layouts {
		t.Run(name, func(t *testing.T) {
			for _, n := range []int{1, 7, 60, 900} {
				items := make([]Item, n)
				for i := range items {
					items[i] = Item{ID: fmt.Sprintf("s%04d", i), Point: gen()}
				}
				ix := mustIndex(t, items)
				for q := range 150 {
					p := gen()
					if q%5 == 0 {
						p = Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}
					}
					maxKm := []float64{0.5, 5, 25, 300, 5000, 21000}[rng.IntN(6)]
					k := []int{0, 1, 3, 16, 1000}[rng.IntN(5)]
					got, err := ix.Nearest(p, maxKm, k)
					if err != nil {
						t.Fatal(err)
					}
					if want := bruteNearest(items, p, maxKm, k); !slices.Equal(ids(got), want) {
						t.Fatalf("n=%d p=%v r=%v k=%d precision=%d:\n got %v\nwant %v", n, p, maxKm, k, ix.Precision(), ids(got), want)
					}
					for i := range got {
						if i > 0 && got[i].DistanceKm < got[i-1].DistanceKm {
							t.Fatalf("not sorted by distance: %v", got)
						}
						if d := Haversine(p, got[i].Point); got[i].DistanceKm != d {
							t.Fatalf("%s: distance %v, haversine %v", got[i].ID, got[i].DistanceKm, d)
						}
					}
				}
			}
		})
	}
}

// BenchmarkNearest searches a city chain (50 stores, the 8 nearest, as a
// reservation does) and a national one (5000 stores, the 16 nearest).
func BenchmarkNearest(b *testing.B) {
	for _, tc := range []struct {
		stores, k int
		spread    float64
	}{{50, 8, 0.1}, {5000, 16, 0.5}} {
		b.Run(fmt.Sprintf("stores=%d/k=%d", tc.stores, tc.k), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 5))
			items := make([]Item, tc.stores)
			for i := range items {
				items[i] = Item{ID: fmt.Sprintf("s%d", i), Point: Point{52.52 + (rng.Float64()*2-1)*0.6*tc.spread, 13.405 + (rng.Float64()*2-1)*tc.spread}}
			}
			ix := mustIndex(b, items)
			pts := make([]Point, 1024)
			for i := range pts {
				pts[i] = Point{52.52 + (rng.Float64()*2-1)*0.4*tc.spread, 13.405 + (rng.Float64()*2-1)*0.6*tc.spread}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := ix.Nearest(pts[i%len(pts)], 20, tc.k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHaversineTermError holds the haversine term, computed from the
// points' half-angle sines and cosines, to the textbook one, from the sines
// of the half differences, within hSlack: the allowance the search makes
// for it. Pairs are near (metres), far, across the antimeridian and at the
// poles.
func TestHaversineTermError(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 9))
	textbook := func(a, b Point) float64 {
		s1, s2 := math.Sin(rad(b.Lat-a.Lat)/2), math.Sin(rad(b.Lon-a.Lon)/2)
		return min(s1*s1+math.Cos(rad(a.Lat))*math.Cos(rad(b.Lat))*s2*s2, 1)
	}
	worst := 0.0
	for i := range 200000 {
		a := Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}
		var b Point
		switch i % 4 {
		case 0:
			b = Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}
		case 1: // metres apart
			b = Point{max(-90, min(90, a.Lat+(rng.Float64()-0.5)*1e-4)), a.Lon + (rng.Float64()-0.5)*1e-4}
		case 2: // across the antimeridian
			a.Lon, b = 179.9+rng.Float64()*0.1, Point{a.Lat + rng.Float64()*0.01, -180 + rng.Float64()*0.1}
		case 3: // at a pole
			a.Lat, b = 89.99+rng.Float64()*0.01, Point{90 - rng.Float64()*0.01, rng.Float64()*360 - 180}
		}
		if !b.Valid() {
			continue
		}
		got, want := haversineTerm(trigOf(a), trigOf(b)), textbook(a, b)
		worst = max(worst, math.Abs(got-want))
		if math.Abs(got-want) > hSlack {
			t.Fatalf("%v to %v: term %v, textbook %v", a, b, got, want)
		}
		if Haversine(a, b) != Haversine(b, a) {
			t.Fatalf("%v to %v: not symmetric", a, b)
		}
	}
	t.Logf("largest difference %.3g (allowed %g)", worst, hSlack)
}

// TestBelowIsALowerBound checks the sine-free bound the search skips items
// with: it never exceeds the haversine term by more than the slack the
// search allows for the term's rounding, near or far, across the
// antimeridian and at the poles.
func TestBelowIsALowerBound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	items := make([]Item, 400)
	for i := range items {
		items[i] = Item{ID: fmt.Sprint(i), Point: Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}}
		if i%4 == 0 { // near neighbours, where the bound is tight
			items[i].Point = Point{52.5 + rng.Float64()*0.01, 13.4 + rng.Float64()*0.01}
		}
	}
	ix := mustIndex(t, items)
	for range 400 {
		p := Point{rng.Float64()*180 - 90, rng.Float64()*360 - 180}
		if rng.IntN(2) == 0 {
			p = Point{52.5 + rng.Float64()*0.01, 13.4 + rng.Float64()*0.01}
		}
		q := ix.query(p, 100)
		for n := range ix.items {
			if lb, h := q.below(ix, n), q.h(ix, n); lb > h+hSlack {
				t.Fatalf("%v to %v: bound %v above h %v", p, ix.items[n].Point, lb, h)
			}
		}
	}
}

// TestNearestFromCachedCells searches again and again from a few small
// areas, so that most searches use a cell's cached item set, and compares
// every answer with brute force: at the poles, across the antimeridian,
// in a dense city and with k larger than the index.
func TestNearestFromCachedCells(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	cases := []struct {
		name   string
		centre Point
		spread float64 // degrees, of stores and of shoppers around the centre
	}{
		{"dense city", Point{52.52, 13.405}, 0.2},
		{"north pole", Point{89.95, 10}, 0.05},
		{"south pole", Point{-89.9, -170}, 0.1},
		{"antimeridian", Point{-17, 179.99}, 0.3},
	}
	wrapLon := func(lon float64) float64 {
		for lon > 180 {
			lon -= 360
		}
		for lon < -180 {
			lon += 360
		}
		return lon
	}
	at := func(c Point, spread float64) Point {
		return Point{math.Max(-90, math.Min(90, c.Lat+(rng.Float64()*2-1)*spread)), wrapLon(c.Lon + (rng.Float64()*2-1)*spread)}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items := make([]Item, 300)
			for i := range items {
				items[i] = Item{ID: fmt.Sprintf("s%03d", i), Point: at(tc.centre, tc.spread)}
			}
			ix := mustIndex(t, items)
			// A few spots, each searched from many times.
			spots := make([]Point, 6)
			for i := range spots {
				spots[i] = at(tc.centre, tc.spread)
			}
			for q := range 3000 {
				p := at(spots[q%len(spots)], tc.spread/200)
				maxKm := []float64{1, 5, 25, 500}[q%4]
				k := []int{1, 8, 16, 1000}[(q/4)%4]
				got, err := ix.Nearest(p, maxKm, k)
				if err != nil {
					t.Fatal(err)
				}
				if want := bruteNearest(items, p, maxKm, k); !slices.Equal(ids(got), want) {
					t.Fatalf("p=%v r=%v k=%d:\n got %v\nwant %v", p, maxKm, k, ids(got), want)
				}
			}
			if ix.sets.n.Load() == 0 {
				t.Fatal("no cell's item set was cached: the test exercises nothing")
			}
		})
	}
}

// TestListingsDoNotFillCache checks that searches for many items, as the
// stores listing makes with its limit, leave the cell cache to the few
// nearest that reservations ask for.
func TestListingsDoNotFillCache(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 2))
	items := make([]Item, 200)
	for i := range items {
		items[i] = Item{ID: fmt.Sprintf("s%03d", i), Point: Point{52 + rng.Float64(), 13 + rng.Float64()}}
	}
	ix := mustIndex(t, items)
	for q := range 500 {
		p := Point{52 + rng.Float64(), 13 + rng.Float64()}
		k := maxCachedK + 1 + q%300
		got, err := ix.Nearest(p, 50, k)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteNearest(items, p, 50, k); !slices.Equal(ids(got), want) {
			t.Fatalf("p=%v k=%d:\n got %v\nwant %v", p, k, ids(got), want)
		}
	}
	if n := ix.sets.n.Load(); n != 0 {
		t.Fatalf("listings cached %d cells' item sets", n)
	}
	if _, err := ix.Nearest(Point{52.5, 13.5}, 50, 8); err != nil {
		t.Fatal(err)
	}
	if n := ix.sets.n.Load(); n != 1 {
		t.Fatalf("a reservation's search cached %d cells' item sets, want 1", n)
	}
}

// TestCellSets fills the table of cells' item sets from several goroutines
// at once, each adding some keys that others add too: every key keeps the
// first set added for it, every set is found again, and once the table
// holds maxCachedCells sets it takes no more.
func TestCellSets(t *testing.T) {
	t.Parallel()
	var sets cellSets
	key := func(i int) cellKey { return cellKey{cell: uint64(i) * 7919, maxKm: 20, k: 8} }
	var wg sync.WaitGroup
	kept := make([][]int32, maxCachedCells)
	var mu sync.Mutex
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < maxCachedCells; i += 2 { // each key by two goroutines
				items, ok := sets.add(key(i), []int32{int32(i), int32(g)})
				if !ok {
					t.Errorf("key %d refused before the table is full", i)
					return
				}
				mu.Lock()
				if kept[i] == nil {
					kept[i] = items
				} else if &kept[i][0] != &items[0] {
					t.Errorf("key %d: two sets kept", i)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := sets.n.Load(); n != maxCachedCells || !sets.full() {
		t.Fatalf("%d sets, full %v; want %d, full", n, sets.full(), maxCachedCells)
	}
	for i := range maxCachedCells {
		items, ok := sets.get(key(i))
		if !ok || items[0] != int32(i) || &items[0] != &kept[i][0] {
			t.Fatalf("key %d: got %v %v", i, items, ok)
		}
	}
	if _, ok := sets.add(key(maxCachedCells), []int32{1}); ok {
		t.Fatal("a full table took another set")
	}
	if n := len(*sets.table.Load()); n != 2*maxCachedCells {
		t.Fatalf("a full table has %d slots, want %d", n, 2*maxCachedCells)
	}
	// The table grows with the sets it holds: a sale whose shoppers come
	// from a few cells keeps a small one.
	var few cellSets
	for i := range 9 {
		few.add(key(i), []int32{int32(i)})
	}
	if n := len(*few.table.Load()); n != 32 {
		t.Fatalf("9 sets in %d slots, want 32", n)
	}
	for i := range 9 {
		if items, ok := few.get(key(i)); !ok || items[0] != int32(i) {
			t.Fatalf("after growing, key %d: %v %v", i, items, ok)
		}
	}
	for _, k := range []cellKey{key(maxCachedCells), {cell: 7919, maxKm: 21, k: 8}, {cell: 7919, maxKm: 20, k: 9}} {
		if _, ok := sets.get(k); ok {
			t.Fatalf("found a set for %v, which has none", k)
		}
	}
}
