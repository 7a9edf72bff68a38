package main

import (
	"context"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// cpuTimes is CPU time used so far by this process (the load generator and
// whatever it drives in-process) and by the Redis server.
type cpuTimes struct {
	proc, redis time.Duration
}

// readCPU reads both; a Redis that does not answer counts as zero, so the
// column reads "-" rather than failing the run.
func readCPU(ctx context.Context, rdb *redis.Client) cpuTimes {
	var t cpuTimes
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	info, err := rdb.Info(ctx, "cpu").Result()
	if err == nil {
		t.redis = redisCPU(info)
	}
	return t
}

// redisCPU sums used_cpu_sys and used_cpu_user (seconds) of an INFO cpu
// answer.
func redisCPU(info string) time.Duration {
	var sum float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		if f, err := strconv.ParseFloat(infoField(info, k), 64); err == nil {
			sum += f
		}
	}
	return time.Duration(sum * float64(time.Second))
}
