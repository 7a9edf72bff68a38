package api

import (
	"strconv"
)

// parseReserveBody is the fast path of decode for the reservation body,
// the request every shopper sends: a flat object of the five known keys,
// spelled exactly, with plain ASCII strings and numbers. It reports false
// for anything else (escapes, null, other spellings or keys, nesting,
// malformed input), and the caller then decodes with encoding/json, so
// that every answer, error or not, is encoding/json's. Where it reports
// true, b is what encoding/json would have decoded into a reserveJSON (a
// test holds it to that).
func parseReserveBody(data []byte, b *reserveBody) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		switch k := string(key); k {
		case "user_id", "store_id":
			s, j, ok := plainString(data, i)
			if !ok {
				return false
			}
			if k == "user_id" {
				b.UserID = string(s)
			} else {
				b.StoreID = string(s)
			}
			i = j
		case "lat", "lon":
			lit, j, ok := number(data, i)
			if !ok {
				return false
			}
			f, err := strconv.ParseFloat(string(lit), 64)
			if err != nil {
				return false
			}
			if k == "lat" {
				b.Lat, b.HasLat = f, true
			} else {
				b.Lon, b.HasLon = f, true
			}
			i = j
		case "quantity":
			lit, j, ok := number(data, i)
			if !ok {
				return false
			}
			n, err := strconv.Atoi(string(lit))
			if err != nil {
				return false // a fraction, an exponent or out of range
			}
			b.Quantity, b.HasQuantity = n, true
			i = j
		default:
			return false
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at i made only of printable ASCII with
// no escapes, and returns its contents (a slice of data, so that keys
// and numbers cost no allocation) and the index after it.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// number reads a literal at i that follows JSON's number grammar and
// returns it (a slice of data) and the index after it.
func number(data []byte, i int) ([]byte, int, bool) {
	j := i
	digits := func() bool {
		k := j
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(data) && data[j] == '-' {
		j++
	}
	switch {
	case j < len(data) && data[j] == '0':
		j++
	case !digits():
		return nil, 0, false
	}
	if j < len(data) && data[j] == '.' {
		j++
		if !digits() {
			return nil, 0, false
		}
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		j++
		if j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		if !digits() {
			return nil, 0, false
		}
	}
	return data[i:j], j, true
}
