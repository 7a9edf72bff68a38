package api

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// writeHold answers a hold. It writes exactly what json.Marshal writes for
// a holdView (a test holds it to that), without reflection: it is the
// answer to every reservation.
func writeHold(ctx *fasthttp.RequestCtx, status int, v holdView) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	// Written in the response's own (pooled) body buffer.
	b := ctx.Response.SwapBody(nil)
	ctx.Response.SwapBody(appendHold(b[:0], v))
}

func appendHold(b []byte, v holdView) []byte {
	h := v.Hold
	b = append(b, `{"hold_id":`...)
	b = appendString(b, h.ID)
	b = append(b, `,"sale_id":`...)
	b = appendString(b, h.SaleID)
	b = append(b, `,"store_id":`...)
	b = appendString(b, h.StoreID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, h.UserID)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, int64(h.Quantity), 10)
	b = append(b, `,"distance_km":`...)
	b = appendFloat(b, h.DistanceKm)
	b = append(b, `,"state":`...)
	b = appendString(b, string(h.State))
	b = append(b, `,"created_at":`...)
	from := len(b)
	b = appendTime(b, h.CreatedAt)
	created := b[from:len(b):len(b)]
	b = append(b, `,"expires_at":`...)
	b = appendTime(b, h.ExpiresAt)
	b = append(b, `,"updated_at":`...)
	if h.UpdatedAt.Equal(h.CreatedAt) && h.UpdatedAt.Location() == h.CreatedAt.Location() {
		b = append(b, created...) // a new hold's: formatted once
	} else {
		b = appendTime(b, h.UpdatedAt)
	}
	if v.StoreName != "" {
		b = append(b, `,"store_name":`...)
		b = appendString(b, v.StoreName)
	}
	return append(b, '}')
}

// appendString quotes s as json.Marshal does: plain printable ASCII as it
// is, anything else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat writes f as json.Marshal does for the values it meets here;
// others go through encoding/json.
func appendFloat(b []byte, f float64) []byte {
	// A hold's distance is a whole number of metres, m/1000 km: the
	// shortest decimal that reads back as f is then m's thousandths, less
	// trailing zeros (any other decimal of three places or fewer is a
	// metre away, far outside f's rounding), written here without
	// strconv's search for it.
	if m := math.Round(f * 1000); m/1000 == f && m >= 0 && m < 1e9 && !math.Signbit(f) {
		n := int64(m)
		b = strconv.AppendInt(b, n/1000, 10)
		if frac := n % 1000; frac != 0 {
			d := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
			k := 4
			for d[k-1] == '0' {
				k--
			}
			b = append(b, d[:k]...)
		}
		return b
	}
	if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	q, _ := json.Marshal(f)
	return append(b, q...)
}

// appendTime writes t as json.Marshal does (RFC 3339 with the fraction's
// trailing zeros dropped): UTC times, which every hold has, directly;
// others through time's own formatter.
func appendTime(b []byte, t time.Time) []byte {
	y := t.Year()
	if y < 0 || y > 9999 {
		q, _ := json.Marshal(t)
		return append(b, q...)
	}
	if t.Location() != time.UTC {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	mo, d := t.Month(), t.Day()
	hh, mm, ss := t.Clock()
	b = append(b, '"')
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, int(mo))
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, hh)
	b = append(b, ':')
	b = append2(b, mm)
	b = append(b, ':')
	b = append2(b, ss)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [9]byte
		for i := 8; i >= 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 9
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z', '"')
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
