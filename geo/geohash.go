package geo

import (
	"errors"
	"fmt"
	"math"
)

// EarthRadiusKm is the mean Earth radius used for every distance.
const EarthRadiusKm = 6371.0088

// ErrInvalidPoint reports coordinates that are NaN, infinite, or outside
// [-90, 90] latitude or [-180, 180] longitude.
var ErrInvalidPoint = errors.New("geo: invalid coordinates")

// ErrInvalidGeohash reports a geohash that is empty, too long, or has a
// character outside the geohash alphabet.
var ErrInvalidGeohash = errors.New("geo: invalid geohash")

// Point is a WGS84 coordinate in degrees.
type Point struct{ Lat, Lon float64 }

// Valid reports whether p is a real coordinate; invalid points make the
// functions of this package return ErrInvalidPoint.
func (p Point) Valid() bool {
	return !math.IsNaN(p.Lat) && !math.IsNaN(p.Lon) && p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180
}

func rad(deg float64) float64 { return deg * math.Pi / 180 }

// Haversine returns the great-circle distance between a and b in km.
func Haversine(a, b Point) float64 {
	return hToKm(haversineTerm(trigOf(a), trigOf(b)))
}

// trig is what the haversine needs of a point: the sine and cosine of half
// its latitude and of half its longitude, and the cosine of its latitude.
// An index works them out once per item, so that a search takes no sine
// per item it looks at.
type trig struct {
	sLat, cLat, sLon, cLon, cosLat float64
}

func trigOf(p Point) trig {
	var t trig
	t.sLat, t.cLat = math.Sincos(rad(p.Lat) / 2)
	t.sLon, t.cLon = math.Sincos(rad(p.Lon) / 2)
	t.cosLat = math.Cos(rad(p.Lat))
	return t
}

// haversineTerm is the haversine's inner term between two points,
// sin²(Δφ/2) + cos φa cos φb sin²(Δλ/2), each sine of a half difference
// taken as sin(x-y) = sin x cos y - cos x sin y from the points' trig. It
// is symmetric bit for bit: swapping the points negates each difference
// exactly, since each product is rounded on its own (the conversions keep
// a compiler from fusing a multiply and a subtract, as it may on arm64,
// which would round the two orders differently). Its error is a few units
// in the last place of 1 in each sine: some nanometres of distance.
func haversineTerm(a, b trig) float64 {
	s1 := float64(b.sLat*a.cLat) - float64(b.cLat*a.sLat)
	s2 := float64(b.sLon*a.cLon) - float64(b.cLon*a.sLon)
	return min(s1*s1+a.cosLat*b.cosLat*s2*s2, 1)
}

func hToKm(h float64) float64 { return 2 * EarthRadiusKm * math.Asin(math.Sqrt(h)) }

const base32 = "0123456789bcdefghjkmnpqrstuvwxyz"

var decodeMap = func() (m [256]int8) {
	for i := range m {
		m[i] = -1
	}
	for i := 0; i < len(base32); i++ {
		m[base32[i]] = int8(i)
	}
	return m
}()

// MaxPrecision is the longest geohash Encode produces.
const MaxPrecision = 12

// Encode returns the geohash of p with precision characters (clamped to
// 1..12). An invalid p is encoded as the empty string.
func Encode(p Point, precision int) string {
	if !p.Valid() {
		return ""
	}
	precision = max(1, min(precision, MaxPrecision))
	latLo, latHi, lonLo, lonHi := -90.0, 90.0, -180.0, 180.0
	buf := make([]byte, precision)
	even := true
	for i := range buf {
		var ch byte
		for bit := 4; bit >= 0; bit-- {
			if even {
				if mid := (lonLo + lonHi) / 2; p.Lon >= mid {
					ch |= 1 << bit
					lonLo = mid
				} else {
					lonHi = mid
				}
			} else {
				if mid := (latLo + latHi) / 2; p.Lat >= mid {
					ch |= 1 << bit
					latLo = mid
				} else {
					latHi = mid
				}
			}
			even = !even
		}
		buf[i] = base32[ch]
	}
	return string(buf)
}

// Box is the area a geohash covers.
type Box struct{ MinLat, MaxLat, MinLon, MaxLon float64 }

// Center returns the middle of the box.
func (b Box) Center() Point { return Point{(b.MinLat + b.MaxLat) / 2, (b.MinLon + b.MaxLon) / 2} }

// DecodeBox returns the cell a geohash names. It returns ErrInvalidGeohash
// for an empty or over-long hash or one with a character outside the
// alphabet.
func DecodeBox(hash string) (Box, error) {
	if hash == "" || len(hash) > MaxPrecision {
		return Box{}, fmt.Errorf("%w: %q", ErrInvalidGeohash, hash)
	}
	b := Box{-90, 90, -180, 180}
	even := true
	for i := 0; i < len(hash); i++ {
		v := decodeMap[hash[i]]
		if v < 0 {
			return Box{}, fmt.Errorf("%w: %q", ErrInvalidGeohash, hash)
		}
		for bit := 4; bit >= 0; bit-- {
			on := v&(1<<bit) != 0
			if even {
				mid := (b.MinLon + b.MaxLon) / 2
				if on {
					b.MinLon = mid
				} else {
					b.MaxLon = mid
				}
			} else {
				mid := (b.MinLat + b.MaxLat) / 2
				if on {
					b.MinLat = mid
				} else {
					b.MaxLat = mid
				}
			}
			even = !even
		}
	}
	return b, nil
}

// Neighbors returns the cells adjacent to hash (sides and corners) at the
// same precision: normally 8, wrapping across the antimeridian; at the
// poles only the cells that exist. It never returns hash itself or a
// duplicate. It returns ErrInvalidGeohash for a bad hash.
func Neighbors(hash string) ([]string, error) {
	b, err := DecodeBox(hash)
	if err != nil {
		return nil, err
	}
	h, w := b.MaxLat-b.MinLat, b.MaxLon-b.MinLon
	c := b.Center()
	out := make([]string, 0, 8)
	seen := map[string]bool{hash: true}
	for _, dLat := range []float64{h, 0, -h} {
		lat := c.Lat + dLat
		if lat > 90 || lat < -90 {
			continue
		}
		for _, dLon := range []float64{-w, 0, w} {
			lon := c.Lon + dLon
			if lon >= 180 {
				lon -= 360
			} else if lon < -180 {
				lon += 360
			}
			n := Encode(Point{lat, lon}, len(hash))
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}
