#!/usr/bin/env bash
# SIP REGISTER load, the relay beside Kamailio in the same run (a benchmark, not a test).
#
# sipp sends REGISTERs (tests/sip/scenarios/register-noauth.xml, 100 users cycled through an
# injection file) at increasing rates, the relay and Kamailio taking turns at each rate (so a
# change in the machine's load falls on both); a rate is sustained when every
# REGISTER got its 200 with zero retransmissions, no failure, on time, and the 99th percentile
# response time stayed under MAX_P99 ms (over TCP sipp never retransmits, so without it a
# server that merely queues would pass). The same work on both
# sides: no digest authentication (the relay with --sip-auth off, Kamailio with the reference
# in-memory registrar of bench/kamailio-registrar.cfg), one binding per user refreshed again and
# again. The relay also commits every binding to SQLite before its 200 (refreshes in group
# commits), which Kamailio (usrloc db_mode=0, bindings in memory) does not do; its login events
# are built only when someone watches the user (nobody does here).
#
# A second reference (REFERENCE_DB=1, the default) is Kamailio with usrloc db_mode=1, every
# binding written through to SQLite (db_sqlite, its defaults) before the 200: the same durable
# work as the relay. It runs one worker (-n 1 -N 1): db_sqlite has no busy timeout, and two
# workers writing at once get "database is locked" and answer 500. It ramps through DB_RATES.
# The in-memory Kamailio stays the main comparison.
#
# Prints, per transport, the highest sustained rate of each, the response-time percentiles and
# the server's CPU time per REGISTER at that rate (from /proc: a figure that depends less on
# how busy the machine is than the rate), and the ratios relay/Kamailio.
#
# Settings (environment): RATES (REGISTER/s steps), DURATION (s per step), TRANSPORTS (u1 t1),
# USERS, WORKERS (Kamailio -n/-N), MAX_P99 (ms, default 100), REFERENCE_DB (1, or 0 to skip
# the write-through Kamailio), DB_RATES (its steps).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"2000 4000 6000 8000 10000 12000 14000 16000 18000 20000 24000 28000 32000 36000 40000 44000"}
DURATION=${DURATION:-5}
TRANSPORTS=${TRANSPORTS:-"u1 t1"}
USERS=${USERS:-100}
WORKERS=${WORKERS:-2}
MAX_P99=${MAX_P99:-100}
REFERENCE_DB=${REFERENCE_DB:-1}
DB_RATES=${DB_RATES:-"500 1000 1500 2000 3000 4000 6000 8000"}
KAMAILIO_PORT=5070
KAMAILIO_DB_PORT=5071
KAMAILIO_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules

log() { printf 'sip-bench: %s\n' "$*" >&2; }
# start_relay, signup_users, cpu_ticks, free_port, percentile, sipp_rtts
. bench/sip-lib.sh

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "installing $2"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q "$2"
  fi
}
need sipp sip-tester
need kamailio kamailio
command -v curl >/dev/null || need curl curl
if [ "$REFERENCE_DB" = 1 ]; then
  need sqlite3 sqlite3
  [ -f "$KAMAILIO_MODULES/db_sqlite.so" ] || need /nonexistent kamailio-sqlite-modules
fi

log "building the relay (release)"
cargo build --release --locked -p relay-server

work=$(mktemp -d)
relay_pid=""
kamailio_pid=""
kamailio_db_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  [ -n "$kamailio_pid" ] && kill "$kamailio_pid" 2>/dev/null || true
  [ -n "$kamailio_db_pid" ] && kill "$kamailio_db_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The relay (SIP on a free port, digest auth off, its per-source rate limit off) on SQLite.
start_relay relay "sqlite:$work/relay.db" "$work"

log "signing up $USERS users"
signup_users "$relay_http" 1 "$USERS" "$work/users.csv"

# Kamailio with the reference registrar: UDP and TCP on 127.0.0.1:5070, bindings in memory.
mkdir -p "$work/run"
sed "s#PEERS_DIR#$work#g" bench/kamailio-registrar.cfg >"$work/kamailio.cfg"
kamailio -f "$work/kamailio.cfg" -P "$work/kamailio.pid" -DD -E -b 4194304 \
  -n "$WORKERS" -N "$WORKERS" >"$work/kamailio.out" 2>"$work/kamailio.err" &
kamailio_pid=$!
sleep 1
kill -0 "$kamailio_pid" 2>/dev/null || { log "kamailio did not start"; cat "$work/kamailio.err" >&2; exit 1; }

# The same registrar writing every binding through to SQLite (usrloc db_mode=1) on 5071.
if [ "$REFERENCE_DB" = 1 ]; then
  sqlite3 "$work/kamailio.sqlite" </usr/share/kamailio/db_sqlite/standard-create.sql
  sqlite3 "$work/kamailio.sqlite" </usr/share/kamailio/db_sqlite/usrloc-create.sql
  sed -e "s#PEERS_DIR#$work#g" -e "s#:5070#:$KAMAILIO_DB_PORT#g" -e 's#kamailio_ctl#kamailio_db_ctl#' \
    -e 's#^modparam("usrloc", "db_mode", 0)#modparam("usrloc", "db_mode", 1)\nmodparam("usrloc", "db_url", "sqlite://'"$work"'/kamailio.sqlite")#' \
    -e 's#^loadmodule "usrloc.so"#loadmodule "db_sqlite.so"\nloadmodule "usrloc.so"#' \
    bench/kamailio-registrar.cfg >"$work/kamailio-db.cfg"
  grep -q '"db_mode", 1' "$work/kamailio-db.cfg" || { log "could not make the db_mode=1 config"; exit 1; }
  kamailio -f "$work/kamailio-db.cfg" -P "$work/kamailio-db.pid" -DD -E -b 4194304 \
    -n 1 -N 1 >"$work/kamailio-db.out" 2>"$work/kamailio-db.err" &
  kamailio_db_pid=$!
  sleep 1
  kill -0 "$kamailio_db_pid" 2>/dev/null || { log "kamailio (db_mode=1) did not start"; cat "$work/kamailio-db.err" >&2; exit 1; }
fi

# One step: sipp at RATE for DURATION seconds against the server NAME at TARGET. Prints
# "ok rate p50 p90 p99 max cpu-us-per-register" or "fail why".
step() {
  local name=$1 transport=$2 rate=$3
  local target=${addr[$name]} pid=${pids[$name]}
  local count=$((rate * DURATION)) dir="$work/step-$name-$transport-$rate"
  mkdir -p "$dir"
  local cpu_before
  cpu_before=$(cpu_ticks "$pid")
  local port
  port=$(free_port)
  (cd "$dir" && timeout $((DURATION * 4 + 30)) sipp "$target" \
    -sf "$OLDPWD/tests/sip/scenarios/register-noauth.xml" -inf "$work/users.csv" \
    -t "$transport" -i 127.0.0.1 -p "$port" -r "$rate" -rp 1000 -m "$count" \
    -buff_size 4194304 -nostdin -timeout $((DURATION * 3 + 20))s -recv_timeout 10000 \
    -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1000 >sipp.out 2>&1) || true
  local cpu_after
  cpu_after=$(cpu_ticks "$pid")
  local last
  last=$(tail -1 "$dir/stat.csv" 2>/dev/null || true)
  [ -n "$last" ] || { echo "fail no-statistics"; return; }
  # Columns of sipp's statistics file: 5 elapsed, 16 successful, 18 failed, 58 retransmissions.
  local elapsed ok failed retrans
  elapsed=$(echo "$last" | awk -F';' '{split($5, t, ":"); print t[1]*3600 + t[2]*60 + t[3]}')
  ok=$(echo "$last" | awk -F';' '{print $16}')
  failed=$(echo "$last" | awk -F';' '{print $18}')
  retrans=$(echo "$last" | awk -F';' '{print $58}')
  if [ "$ok" != "$count" ] || [ "$failed" != 0 ] || [ "$retrans" != 0 ] \
    || [ "$elapsed" -gt $((DURATION + 1)) ]; then
    echo "fail ok=$ok/$count failed=$failed retransmissions=$retrans elapsed=${elapsed}s"
    return
  fi
  # Response times (ms, as sipp measures them) of every REGISTER.
  sipp_rtts "$dir" >"$dir/rtt"
  pct() { percentile "$1" "$dir/rtt"; }
  local p99
  p99=$(pct 99)
  if awk -v p="$p99" -v m="$MAX_P99" 'BEGIN {exit !(p > m)}'; then
    echo "fail p99=${p99}ms over ${MAX_P99}ms"
    return
  fi
  local cpu_us
  cpu_us=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$(getconf CLK_TCK)" -v n="$count" \
    'BEGIN {printf "%.1f", t * 1000000 / hz / n}')
  echo "ok $rate $(pct 50) $(pct 90) $p99 $(tail -1 "$dir/rtt") $cpu_us"
}

# One rate step of server NAME, retried once when it fails (the servers share two cores with
# sipp, so one noisy step should not end a ramp). Logs and prints the step's result.
attempt() {
  local name=$1 transport=$2 rate=$3 result
  result=$(step "$name" "$transport" "$rate")
  if [ "${result%% *}" != ok ]; then
    log "  $name $rate/s: ${result#fail }; again"
    result=$(step "$name" "$transport" "$rate")
  fi
  log "  $name $rate/s: $result"
  echo "$result"
}

# The highest rate each of NAMES sustains over TRANSPORT through RATES: the servers take turns
# at each rate (so a change in the machine's load falls on both), each until its first failure.
ramp() {
  local transport=$1 rates=$2 name result
  shift 2
  local -A going=()
  for name in "$@"; do going[$name]=1; best[$name-$transport]="none"; done
  for rate in $rates; do
    for name in "$@"; do
      [ -n "${going[$name]}" ] || continue
      result=$(attempt "$name" "$transport" "$rate")
      if [ "${result%% *}" = ok ]; then
        best[$name-$transport]=${result#ok }
      else
        going[$name]=""
      fi
    done
    [ -n "${going[*]// /}" ] || break
  done
}

declare -A addr=([relay]=$relay_sip [kamailio]=127.0.0.1:$KAMAILIO_PORT [kamailio-db]=127.0.0.1:$KAMAILIO_DB_PORT)
declare -A pids=([relay]=$relay_pid [kamailio]=$kamailio_pid [kamailio-db]=${kamailio_db_pid:-$kamailio_pid})
declare -A best
for transport in $TRANSPORTS; do
  log "relay ($relay_sip) and kamailio (127.0.0.1:$KAMAILIO_PORT) over $transport, taking turns"
  ramp "$transport" "$RATES" relay kamailio
  if [ "$REFERENCE_DB" = 1 ]; then
    log "kamailio db_mode=1 (SQLite write-through) over $transport (127.0.0.1:$KAMAILIO_DB_PORT)"
    ramp "$transport" "$DB_RATES" kamailio-db
  fi
done
servers="relay kamailio"
[ "$REFERENCE_DB" = 1 ] && servers="$servers kamailio-db"

echo
echo "REGISTER/s sustained with zero retransmissions and p99 under ${MAX_P99} ms (${DURATION}s steps, $USERS users, $(nproc) cores shared with sipp)"
echo "(kamailio: usrloc db_mode=0, in memory, $WORKERS workers; kamailio-db: db_mode=1, written through to SQLite, 1 worker)"
echo "(CPU us/REGISTER: the server's user + system CPU time at that rate over the REGISTERs sent)"
printf '%-10s %-12s %12s %8s %8s %8s %8s %10s\n' transport server "REGISTER/s" "p50 ms" "p90 ms" "p99 ms" "max ms" "CPU us/REG"
for transport in $TRANSPORTS; do
  for server in $servers; do
    read -r rate p50 p90 p99 max cpu _ <<<"${best[$server-$transport]} - - - - - -"
    printf '%-10s %-12s %12s %8s %8s %8s %8s %10s\n' "$transport" "$server" "$rate" "$p50" "$p90" "$p99" "$max" "$cpu"
  done
  r=${best[relay-$transport]%% *}
  for server in $servers; do
    [ "$server" = relay ] && continue
    k=${best[$server-$transport]%% *}
    if [[ "$r" =~ ^[0-9]+$ && "$k" =~ ^[0-9]+$ ]]; then
      echo "$transport ratio relay/$server: $(awk -v r="$r" -v k="$k" 'BEGIN {printf "%.2f", r / k}')"
    fi
  done
done
