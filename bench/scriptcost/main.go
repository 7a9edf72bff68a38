// Command scriptcost drives reserve.lua through the ledger, in batches of
// a fixed size, against a Redis of its own, so that the cost of the script
// per hold can be counted: scripts/script-cost.sh runs that Redis under
// callgrind and divides the instructions spent in EVALSHA by the holds.
// Instruction counts do not depend on what else the machine is doing, so
// two versions of the script compare exactly, where timings on a shared
// machine do not.
//
// Each request is a new shopper whose nearest store differs from the
// previous request's (the counters of many stores are read and written per
// batch, as in a real sale), with eight candidate stores.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flashsale/flashsale/engine"
	"github.com/flashsale/flashsale/reservation"
)

func main() {
	url := flag.String("redis-url", "redis://127.0.0.1:6379/0", "Redis to drive (use one of its own: the sale's keys are removed afterwards, nothing else is touched)")
	batch := flag.Int("batch", 20, "reservations per script call")
	holds := flag.Int("holds", 10240, "holds to create in all")
	flag.Parse()
	if *batch < 1 || *holds < *batch {
		fmt.Fprintln(os.Stderr, "scriptcost: -batch must be positive and -holds at least -batch")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, *url, *batch, *holds); err != nil {
		fmt.Fprintln(os.Stderr, "scriptcost:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, url string, batch, holds int) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	reservation.Tune(opt) // RESP2, as the flashsale binary speaks: the script's reply is encoded for it
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ns := "scriptcost-" + engine.RandomID()
	led := reservation.New(rdb, reservation.WithNamespace(ns))
	if err := led.Load(ctx); err != nil {
		return err
	}
	eng, err := engine.New(engine.Config{Ledger: led})
	if err != nil {
		return err
	}
	const nStores = 50
	stores := make([]engine.Store, nStores)
	alloc := map[string]int{}
	for i := range stores {
		stores[i] = engine.Store{ID: fmt.Sprintf("s%02d", i), Name: fmt.Sprint("Store ", i), Lat: 52.5, Lon: 13.4}
		alloc[stores[i].ID] = holds
	}
	if err := eng.UpsertStores(ctx, stores); err != nil {
		return err
	}
	now := time.Now()
	sale, err := eng.CreateSale(ctx, engine.Sale{ID: "scriptcost-" + engine.RandomID(), Name: "scriptcost",
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour), PerUserLimit: 1, HoldTTLSeconds: 600,
		MaxDistanceKm: 25, Allocations: alloc})
	if err != nil {
		return err
	}
	defer func() {
		rdb.Unlink(ctx, append(reservation.SaleKeys(sale.ID), ns+":stores", ns+":sales")...)
	}()

	made, calls := 0, 0
	for made < holds {
		reqs := make([]engine.LedgerReserve, 0, batch)
		for range batch {
			cands := make([]engine.Candidate, 8)
			for j := range cands {
				cands[j] = engine.Candidate{StoreID: stores[(made+j)%nStores].ID, DistanceKm: 0.25 + float64(j)*0.75}
			}
			reqs = append(reqs, engine.LedgerReserve{HoldID: sale.ID + "." + engine.RandomID(), UserID: fmt.Sprint("u", made),
				Key: "k", Quantity: 1, Candidates: cands})
			made++
		}
		outs, err := led.Reserve(ctx, sale.ID, time.Now(), reqs)
		if err != nil {
			return err
		}
		calls++
		for _, o := range outs {
			if o.Err != nil {
				return fmt.Errorf("a reservation failed: %w", o.Err)
			}
		}
	}
	fmt.Fprintf(w, "batch %d: %d holds in %d script calls\n", batch, made, calls)
	return nil
}
