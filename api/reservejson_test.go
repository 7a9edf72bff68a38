package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// viaEncodingJSON decodes as the slow path does.
func viaEncodingJSON(data []byte) (reserveBody, bool) {
	var j reserveJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if dec.Decode(&j) != nil {
		return reserveBody{}, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return reserveBody{}, false
	}
	return j.body(), true
}

// checkAgainstEncodingJSON fails when the fast path accepts data and
// decodes something other than encoding/json does, or accepts what
// encoding/json refuses.
func checkAgainstEncodingJSON(t *testing.T, data []byte) (accepted bool) {
	t.Helper()
	var fast reserveBody
	if !parseReserveBody(data, &fast) {
		return false
	}
	slow, ok := viaEncodingJSON(data)
	if !ok {
		t.Fatalf("fast path accepted %q, which encoding/json refuses", data)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: fast path decoded %+v, encoding/json %+v", data, show(fast), show(slow))
	}
	return true
}

func show(b reserveBody) string {
	var sb strings.Builder
	json.NewEncoder(&sb).Encode(b)
	return sb.String()
}

func TestParseReserveBody(t *testing.T) {
	accepted := []string{
		`{"user_id":"u1","lat":52.52,"lon":13.405}`,
		` { "user_id" : "u-1" , "store_id" : "s1" , "quantity" : 2 } `,
		"{\n\t\"user_id\":\"a\",\r\n\"lat\":-0.5e-3,\"lon\":1E+2}\n",
		`{"lat":0,"lon":-0,"quantity":-0}`,
		`{"user_id":"x","user_id":"y"}`, // the last one wins, as in encoding/json
		`{}`,
		`{"quantity":-3}`,
	}
	for _, in := range accepted {
		if !checkAgainstEncodingJSON(t, []byte(in)) {
			t.Errorf("fast path refused %q", in)
		}
	}
	// Left to encoding/json: it accepts some (other spellings, escapes,
	// null) and refuses others, with its own error.
	refused := []string{
		``, ` `, `[]`, `{`, `{"user_id":"u1"`, `{"user_id":"u1",}`, `{"user_id":"u1"} x`, `{"user_id":"u1"}{}`,
		`{"USER_ID":"u1"}`, `{"user_id":"u\u0031"}`, `{"user_id":null}`, `{"lat":null}`, `{"user_id":1}`,
		`{"lat":"52"}`, `{"lat":01}`, `{"lat":1.}`, `{"lat":.5}`, `{"lat":1e}`, `{"lat":+1}`, `{"lat":1e999}`,
		`{"quantity":1.0}`, `{"quantity":1e2}`, `{"quantity":99999999999999999999}`, `{"other":1}`,
		`{"user_id":"é"}`, "{\"user_id\":\"a\x01\"}", `{"user_id":{"a":1}}`, `{"lat":NaN}`, `{'user_id':'u'}`,
	}
	for _, in := range refused {
		if checkAgainstEncodingJSON(t, []byte(in)) {
			t.Errorf("fast path accepted %q", in)
		}
	}
}

// TestParseReserveBodyRandom mutates valid bodies byte by byte: whatever
// the fast path accepts, encoding/json decodes the same.
func TestParseReserveBodyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seeds := []string{
		`{"user_id":"u1","lat":52.52,"lon":13.405,"quantity":1}`,
		`{"user_id":"u1","store_id":"s-9","quantity":12}`,
		` {"lat": -1.5e+3 , "lon": 0.25 } `,
	}
	const alphabet = "{}[]\":,. -+eE0123456789abcdefghijklmnopqrstuvwxyz_\\\n\t"
	accepted := 0
	for range 20000 {
		b := []byte(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
			}
		}
		if checkAgainstEncodingJSON(t, b) {
			accepted++
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d mutated bodies took the fast path: the test exercises too little", accepted)
	}
}

func FuzzParseReserveBody(f *testing.F) {
	f.Add([]byte(`{"user_id":"u1","lat":52.52,"lon":13.405}`))
	f.Add([]byte(`{"user_id":"u1","store_id":"s1","quantity":2}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstEncodingJSON(t, data) })
}

func TestSplitPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/v1/sales/s1/reservations":           "[v1 sales s1 reservations]",
		"/v1/sales/s1/reservations/":          "[v1 sales s1 reservations]",
		"v1/holds/a.b":                        "[v1 holds a.b]",
		"/v1/stores/s1/orders/o1/picked-up":   "[v1 stores s1 orders o1 picked-up]",
		"/v1/sales//reservations":             "[v1 sales  reservations]",
		"/":                                   "[]",
		"/v1/stores/s1/orders/o1/picked-up/x": "too long",
		"/a/b/c/d/e/f/g/h":                    "too long",
	} {
		seg, n, ok := splitPath(path)
		got := "too long"
		if ok {
			got = fmt.Sprint(seg[:n])
		}
		if got != want {
			t.Errorf("splitPath(%q) = %s, want %s", path, got, want)
		}
	}
}
