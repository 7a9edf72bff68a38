#!/usr/bin/env bash
# ensure-services.sh [redis] [postgres] — make sure the services flashsale
# needs answer, starting local servers from installed binaries, or installing
# Debian's packages when running as root, and failing with a clear message
# otherwise. With no arguments it checks both. Idempotent; one line per
# service when all is well.
#
# When REDIS_URL / DATABASE_URL point somewhere other than the local default
# port, the script only checks that endpoint and never starts anything.
set -euo pipefail

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# url_hostport URL DEFAULT_PORT — prints "host port" of a redis:// or
# postgres:// URL (defaults: 127.0.0.1 and DEFAULT_PORT).
url_hostport() {
  local rest=${1#*://}
  rest=${rest#*@}          # drop credentials
  rest=${rest%%[/?]*}      # drop path and query
  local host=${rest%:*} port=${rest##*:}
  [ "$rest" = "$host" ] && port=$2
  [ -z "$host" ] && host=127.0.0.1
  [ -z "$port" ] && port=$2
  host=${host#[}; host=${host%]}
  echo "$host $port"
}

is_local() { case "$1" in 127.0.0.1|localhost|::1) return 0;; esac; return 1; }

tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

apt_install() {
  command -v apt-get >/dev/null || return 1
  is_root || return 1
  say "installing $* from the distribution's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; }
}

wait_for() { # wait_for SECONDS CMD...
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

# ---------------------------------------------------------------- Redis
redis_up() { # redis_up HOST PORT
  if command -v redis-cli >/dev/null; then
    [ "$(timeout 2 redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = PONG ]
  else
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2; printf 'PING\r\n' >&3; head -c5 <&3 | grep -q PONG" 2>/dev/null
  fi
}

ensure_redis() {
  local hp host port
  hp=$(url_hostport "${REDIS_URL:-redis://127.0.0.1:6379/0}" 6379); read -r host port <<<"$hp"
  if [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
    hp=${REDIS_CLUSTER_ADDRS%%,*}; host=${hp%:*}; port=${hp##*:}
  fi
  if redis_up "$host" "$port"; then say "redis: up on $host:$port"; return; fi
  if ! is_local "$host" || [ "$port" != 6379 ] || [ -n "${REDIS_CLUSTER_ADDRS:-}" ]; then
    die "Redis at $host:$port does not answer; start it or fix REDIS_URL / REDIS_CLUSTER_ADDRS"
  fi
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server || die "flashsale needs Redis on 127.0.0.1:6379: install it with 'sudo apt-get install redis-server' (or set REDIS_URL)"
  fi
  local dir=${TMPDIR:-/tmp}/flashsale-redis
  mkdir -p "$dir"
  say "redis: starting redis-server on 127.0.0.1:6379 (nothing kept on disk, log in $dir)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" >/dev/null
  wait_for 30 redis_up 127.0.0.1 6379 || die "redis-server did not answer within 30 s; see $dir/redis.log"
  say "redis: up on 127.0.0.1:6379"
}

# ----------------------------------------------------------- PostgreSQL
pg_up() { # pg_up HOST PORT
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$1" -p "$2" -t 2
  else
    tcp_open "$1" "$2"
  fi
}

as_postgres() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql || die "flashsale needs PostgreSQL on 127.0.0.1:5432: install it with 'sudo apt-get install postgresql' (or set DATABASE_URL)"
  fi
  is_root || die "PostgreSQL is installed but not running, and starting it needs root: run 'sudo pg_ctlcluster <version> main start' (or set DATABASE_URL)"
  local ver
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -z "$ver" ] || [ ! -d "/etc/postgresql/$ver/main" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    say "postgres: creating cluster $ver/main"
    pg_createcluster "$ver" main -p 5432 -- --auth-host=trust --auth-local=trust >/dev/null
  fi
  say "postgres: starting cluster $ver/main"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
}

ensure_postgres() {
  local hp host port
  hp=$(url_hostport "${DATABASE_URL:-postgres://127.0.0.1:5432/flashsale}" 5432); read -r host port <<<"$hp"
  if ! pg_up "$host" "$port"; then
    if ! is_local "$host" || [ "$port" != 5432 ]; then
      die "PostgreSQL at $host:$port does not answer; start it or fix DATABASE_URL"
    fi
    start_postgres
    wait_for 30 pg_up 127.0.0.1 5432 || die "PostgreSQL did not answer on 127.0.0.1:5432 within 30 s; see /var/log/postgresql"
  fi
  # The app connects as the current OS user without a password; make sure
  # that role exists on a local server we may administer.
  if is_local "$host" && [ -z "${DATABASE_URL:-}" ] && command -v psql >/dev/null; then
    if ! psql -h "$host" -p "$port" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
      if is_root && id postgres >/dev/null 2>&1; then
        say "postgres: creating superuser role $(id -un)"
        as_postgres createuser -h "$host" -p "$port" -s "$(id -un)" 2>/dev/null ||
          as_postgres createuser -s "$(id -un)" 2>/dev/null || true
      fi
      psql -h "$host" -p "$port" -d postgres -Atqc 'select 1' >/dev/null 2>&1 ||
        die "PostgreSQL answers on $host:$port but refuses '$(id -un)' without a password: create the role or set DATABASE_URL"
    fi
  fi
  say "postgres: up on $host:$port"
}

[ $# -eq 0 ] && set -- redis postgres
for svc in "$@"; do
  case "$svc" in
    redis) ensure_redis ;;
    postgres|postgresql) ensure_postgres ;;
    *) die "unknown service '$svc' (want redis or postgres)" ;;
  esac
done
