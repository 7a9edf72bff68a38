package api

import (
	"bytes"
	"encoding/json"
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

func TestReservePath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/v1/sales/s1/reservations":             "s1",
		"/v1/sales/a.b-c_d/reservations":        "a.b-c_d",
		"/v1/sales//reservations":               "",
		"/v1/sales/a/b/reservations":            "",
		"/v1/sales/s1/reservations/":            "",
		"/v1/sales/s1/reservation":              "",
		"/v2/sales/s1/reservations":             "",
		"/v1/sales/reservations":                "",
		"/v1/sales/s1/reservations/x":           "",
		"/v1/stores/s1/reservations":            "",
		"/v1/sales/s1/reservationsreservations": "",
	} {
		id, ok := reservePath([]byte(path))
		if string(id) != want || ok != (want != "") {
			t.Errorf("reservePath(%q) = %q, %v; want %q", path, id, ok, want)
		}
	}
}

// TestJSONProblemNamesNoGoType: what a client is told about a body of the
// wrong shape names its fields and JSON's kinds of value, never the Go
// types behind them.
func TestJSONProblemNamesNoGoType(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"lat":"52.5","lon":13.4}`:            "lat must be a number, not string",
		`{"user_id":7}`:                        "user_id must be a string, not number",
		`{"quantity":1.5}`:                     "quantity must be a whole number in range, not number 1.5",
		`{"quantity":99999999999999999999999}`: "quantity must be a whole number in range, not number 99999999999999999999999",
		`[1]`:                                  "the body must be an object, not array",
		`{"price":1}`:                          `unknown field "price"`,
		`{"lat":`:                              "unexpected EOF",
	} {
		var j reserveJSON
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		err := dec.Decode(&j)
		if err == nil {
			t.Fatalf("%s decoded", body)
		}
		if got := jsonProblem(err); got != want || strings.Contains(got, "Go ") || strings.Contains(got, "reserve") {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}
