package engine

import (
	"strings"
	"sync"
	"testing"
)

// TestRandomIDs draws ids from many goroutines at once, over many refills
// of the buffered random bytes: every id is 16 base32 characters, and none
// repeats (80 bits: a repeat in 200,000 would mean bytes handed out twice).
func TestRandomIDs(t *testing.T) {
	const goroutines, each = 8, 25000
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				ids[g] = append(ids[g], RandomID())
			}
		})
	}
	wg.Wait()
	if id := RandomIDAfter("sale-1", "."); len(id) != 23 || id[:7] != "sale-1." || strings.Trim(id[7:], "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Fatalf("RandomIDAfter: %q", id)
	}
	seen := make(map[string]bool, goroutines*each)
	for _, list := range ids {
		for _, id := range list {
			if len(id) != 16 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
				t.Fatalf("id %q is not 16 base32 characters", id)
			}
			if seen[id] {
				t.Fatalf("id %q drawn twice", id)
			}
			seen[id] = true
		}
	}
}

// TestRandomBytesWipes: the bytes handed out are not left in the buffer,
// and a buffer without enough left is filled again.
func TestRandomBytesWipes(t *testing.T) {
	r := &randomBytes{used: len(randomBytes{}.b)}
	var zero, p, q [10]byte
	r.read(p[:])
	r.read(q[:])
	if p == zero || q == zero || p == q {
		t.Fatalf("read %x then %x", p, q)
	}
	if r.used != 20 {
		t.Fatalf("used %d bytes, want 20", r.used)
	}
	for i, c := range r.b[:r.used] {
		if c != 0 {
			t.Fatalf("byte %d handed out and still in the buffer", i)
		}
	}
	if [10]byte(r.b[20:30]) == zero {
		t.Fatal("the rest of the buffer is not random")
	}
	r.used = len(r.b) - 5
	r.read(p[:])
	if r.used != 10 || p == zero {
		t.Fatalf("after a refill: used %d, read %x", r.used, p)
	}
}
