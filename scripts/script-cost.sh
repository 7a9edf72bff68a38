#!/usr/bin/env bash
# script-cost.sh: how many instructions Redis spends inside reserve.lua per
# hold, for batches of several sizes. Each size runs against a fresh
# redis-server under callgrind (on a spare loopback port), which counts the
# instructions of EVALSHA and everything it calls. Counts are exact and do
# not depend on the machine's load, so they compare two versions of the
# script where timings cannot. The count includes the one script call that
# creates the sale of 50 stores (about 1.6 million instructions: some 160
# per hold over the default 10240). Needs valgrind and redis-server.
#   SCRIPT_COST_BATCHES  batch sizes (default "1 20 256")
#   SCRIPT_COST_HOLDS    holds per size (default 10240)
#   SCRIPT_COST_PORT     port of the measured Redis (default 6391)
set -euo pipefail
cd "$(dirname "$0")/.."

batches=${SCRIPT_COST_BATCHES:-1 20 256}
holds=${SCRIPT_COST_HOLDS:-10240}
port=${SCRIPT_COST_PORT:-6391}
for tool in valgrind redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "script-cost: $tool is needed (apt-get install valgrind redis-server)" >&2; exit 1; }
done
if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "script-cost: something already answers on port $port; set SCRIPT_COST_PORT" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
go build -o "$work/scriptcost" ./bench/scriptcost

for batch in $batches; do
  n=$(( holds / batch * batch ))
  rm -f "$work"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --toggle-collect=evalShaCommand \
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "script-cost: redis-server under valgrind did not start:" >&2; cat "$work/redis.log" >&2; exit 1; }
    sleep 0.2
  done
  "$work/scriptcost" -redis-url "redis://127.0.0.1:$port/0" -batch "$batch" -holds "$n" >/dev/null
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  ir=$(awk '/^summary:/ {s += $2} END {print s + 0}' "$work"/cg.*)
  if [ "$ir" -eq 0 ]; then
    echo "script-cost: callgrind counted nothing in evalShaCommand (another Redis version?)" >&2
    exit 1
  fi
  printf 'batch %4d: %7d instructions per hold in reserve.lua (%d holds)\n' "$batch" $(( ir / n )) "$n"
done
