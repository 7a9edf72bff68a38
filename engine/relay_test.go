package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeOutbox serves fixed entries per sale once, or fails a sale's reads.
type fakeOutbox struct {
	entries map[string][]OutboxEntry
	fail    map[string]error
	acked   map[string]int
}

func (o *fakeOutbox) Read(_ context.Context, saleID, _ string, _ int) ([]OutboxEntry, error) {
	if err := o.fail[saleID]; err != nil {
		return nil, err
	}
	e := o.entries[saleID]
	o.entries[saleID] = nil
	return e, nil
}

func (o *fakeOutbox) Ack(_ context.Context, saleID string, entries []OutboxEntry) error {
	o.acked[saleID] += len(entries)
	return nil
}

func (o *fakeOutbox) Len(context.Context, string) (int64, error) { return 0, nil }

type recordingPublisher struct{ ids []string }

func (p *recordingPublisher) Publish(_ context.Context, events []Event) error {
	for _, e := range events {
		p.ids = append(p.ids, e.ID)
	}
	return nil
}

// TestRelayGoesPastAFailingSale: an outbox that cannot be read holds up
// only its own sale; the sales after it are relayed and acknowledged, and
// the error is reported.
func TestRelayGoesPastAFailingSale(t *testing.T) {
	t.Parallel()
	broken := errors.New("entry without records")
	ob := &fakeOutbox{
		entries: map[string][]OutboxEntry{"good": {{Ref: "1-0", Event: Event{ID: "h1:held"}}, {Ref: "1-0", Event: Event{ID: "h2:held"}}}},
		fail:    map[string]error{"bad": broken},
		acked:   map[string]int{},
	}
	pub := &recordingPublisher{}
	r, err := NewRelay(RelayConfig{Outbox: ob, Publisher: pub, Consumer: "test",
		Sales: func(context.Context) ([]string, error) { return []string{"bad", "good"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.RelayOnce(context.Background())
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("error %v, want the bad sale's", err)
	}
	if n != 2 || strings.Join(pub.ids, " ") != "h1:held h2:held" || ob.acked["good"] != 2 {
		t.Fatalf("relayed %d %v, acked %v: want the good sale's two events", n, pub.ids, ob.acked)
	}
}
