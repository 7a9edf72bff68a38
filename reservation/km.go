package reservation

import (
	"math"
	"strconv"
)

// A hold's distance is kept to the metre: the script stores it as the
// caller formats it, with three decimals of a kilometre. A reservation
// formats one for each of its candidate stores, so this is done with
// integers wherever that gives what strconv.AppendFloat(b, d, 'f', 3, 64)
// gives, and by strconv elsewhere.

// metres is d kilometres rounded to the metre, as rounding d's exact
// decimal value gives it; ok is false where d*1000 cannot tell that (a
// hair from half a metre, where the product's rounding could decide it)
// and for d out of a distance's range (negative, -0, NaN or huge).
func metres(d float64) (m int64, ok bool) {
	if !(d >= 0 && d < 1e6) || math.Signbit(d) {
		return 0, false
	}
	// Below 1e9, d*1000 is within 1.2e-7 of the exact product: only a
	// fraction that close to one half could round the wrong way.
	v := d * 1000
	f := math.Floor(v)
	frac := v - f
	if frac > 0.5-1e-6 && frac < 0.5+1e-6 {
		return 0, false
	}
	m = int64(f)
	if frac > 0.5 {
		m++
	}
	return m, true
}

// appendKm appends d as strconv.AppendFloat(b, d, 'f', 3, 64) does.
func appendKm(b []byte, d float64) []byte {
	m, ok := metres(d)
	if !ok {
		return strconv.AppendFloat(b, d, 'f', 3, 64)
	}
	b = strconv.AppendInt(b, m/1000, 10)
	r := m % 1000
	return append(b, '.', byte('0'+r/100), byte('0'+r/10%10), byte('0'+r%10))
}

// roundKm is d as the script stores it: the float64 that its three
// decimals parse to.
func roundKm(d float64) float64 {
	if m, ok := metres(d); ok {
		// m and 1000 are exact and the quotient is correctly rounded:
		// the float64 nearest m/1000, as parsing "m/1000" gives.
		return float64(m) / 1000
	}
	var b [32]byte
	v, _ := strconv.ParseFloat(string(strconv.AppendFloat(b[:0], d, 'f', 3, 64)), 64)
	return v
}
