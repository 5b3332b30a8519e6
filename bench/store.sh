#!/usr/bin/env bash
# REGISTER/s and SEND/s of the relay on its two store engines, in one run (a benchmark, not a
# test): one relay on SQLite (the reference), one on PostgreSQL, and two relays sharing one
# PostgreSQL database (each taking half the load; their figures summed).
#
# REGISTER/s: sipp (tests/sip/scenarios/register-noauth.xml, the relay with --sip-auth off, as
# bench/sip-register.sh does it, USERS users cycled) at its highest rate for SECONDS: a closed
# loop of at most CONCURRENT REGISTERs outstanding per sipp, so the figure is what the relay
# answers, not a rate sipp was told. Two relays: one sipp each, on half the users each.
# SEND/s: rest-bench --relay-url (bench/src; bench/README.md), SEND timed to the recipient's
# WebSocket, SENDERS senders; two relays: one client each.
# p99: REGISTER over every response of the setup (both sipps together); SEND the higher of
# the clients' p99s.
#
# sqlite-both: the SQLite relay again, REGISTERs at half the rate it answered alone (a storm
# at a fixed rate, BOTH_RATE to choose another) while the SENDs run: what each costs the other.
#
# Usage: bench/store.sh [--seconds 3]; settings (environment): USERS (100), CONCURRENT (64),
# TRANSPORT (u1), SENDERS (8), WARMUP (1 s), BOTH_RATE, RESTSIP_BENCH_POSTGRES
# (postgres://postgres@127.0.0.1:5432), RESTSIP_RELAY_BIN (a relay binary to use instead of
# building one).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=3
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECS=${2:?--seconds needs a value}; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "store.sh: unknown option $1 (--seconds N)" >&2; exit 2 ;;
  esac
done
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "store.sh: --seconds must be a whole number above 0" >&2; exit 2; }
USERS=${USERS:-100}
CONCURRENT=${CONCURRENT:-64}
TRANSPORT=${TRANSPORT:-u1}
SENDERS=${SENDERS:-8}
WARMUP=${WARMUP:-1}
PG=${RESTSIP_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
PG=${PG%/}

log() { printf 'store-bench: %s\n' "$*" >&2; }
. bench/sip-lib.sh

for tool in sipp psql curl; do
  command -v "$tool" >/dev/null || { log "$tool is missing (sipp: apt-get install sip-tester; psql: postgresql-client)"; exit 1; }
done
if [ -z "${RESTSIP_RELAY_BIN:-}" ]; then
  log "building the relay and rest-bench (release)"
  cargo build --release -p relay-server -p restsip-bench
fi
rest_bench=${RESTSIP_REST_BENCH_BIN:-target/release/rest-bench}

work=$(mktemp -d)
databases=()
started=()
stop_relays() {
  local pid
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  started=()
}
cleanup() {
  stop_relays
  local db
  for db in "${databases[@]}"; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# register_run NAME [RATE]: sipp against relay NAME's SIP address for SECS (after WARMUP) on the
# users of $work/NAME.csv, as fast as the relay answers with CONCURRENT outstanding (or at RATE
# REGISTERs a second, still at most CONCURRENT outstanding). Writes $work/NAME-sip/{result,rtt}:
# "REGISTER/s failed retransmissions", response times.
register_run() {
  local name=$1 rate=${2:-1000000} dir="$work/$1-sip" target_var="${1}_sip" port
  mkdir -p "$dir"
  port=$(free_port)
  (cd "$dir" && timeout -s INT -k 5 $((WARMUP + SECS + 1)) sipp "${!target_var}" \
    -sf "$OLDPWD/tests/sip/scenarios/register-noauth.xml" -inf "$work/$name.csv" \
    -t "$TRANSPORT" -i 127.0.0.1 -p "$port" -r "$rate" -rp 1000 -l "$CONCURRENT" -m 100000000 \
    -buff_size 4194304 -nostdin -recv_timeout 10000 \
    -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 200 >sipp.out 2>&1) || true
  # sipp's statistics file, a line a second: 5 elapsed (h:m:s:…), 16 successful (cumulative),
  # 18 failed, 58 retransmissions. The rate is measured from the first line at or after WARMUP
  # seconds to the last one.
  awk -F';' -v warm="$WARMUP" '
    NR > 1 { split($5, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3] + t[4] / 1e6;
             if (!started && s >= warm) { started = 1; s0 = s; ok0 = $16 }
             s1 = s; ok1 = $16; failed = $18; retrans = $58 }
    END { if (started && s1 > s0) printf "%.0f %d %d\n", (ok1 - ok0) / (s1 - s0), failed, retrans;
          else print "- - -" }' "$dir/stat.csv" >"$dir/result" 2>/dev/null || echo "- - -" >"$dir/result"
  sipp_rtts "$dir" >"$dir/rtt"
}

# send_run NAME: rest-bench's SEND scenario on relay NAME; writes $work/NAME-send/result:
# "SEND/s p99-ms failed".
send_run() {
  local name=$1 dir="$work/$1-send" url_var="${1}_http"
  mkdir -p "$dir"
  "$rest_bench" --relay-url "${!url_var}" --seconds "$SECS" --warmup "$WARMUP" --senders "$SENDERS" \
    >"$dir/out" 2>"$dir/err" || true
  awk -F'|' '$1 ~ /^SEND/ { gsub(/ /, ""); print $5, $8, $4; found = 1 } END { if (!found) print "- - -" }' \
    "$dir/out" >"$dir/result"
}

# measure SETUP RELAYS…: REGISTER then SEND on every relay of the setup at once; appends
# "setup REGISTER/s p99 SEND/s p99 notes" to $work/table. With TOGETHER=RATE, REGISTERs at
# RATE a second per relay and SENDs run at the same time instead of one after the other.
measure() {
  local setup=$1 name jobs_ n=0 reg=0 send=0 send_p99=0 notes="" r f x
  shift
  : >"$work/$setup.rtt"
  jobs_=()
  if [ -n "${TOGETHER:-}" ]; then
    # The SENDs first; the REGISTERs once rest-bench has its users and starts loading.
    for name in "$@"; do send_run "$name" & jobs_+=($!); done
    for name in "$@"; do
      for _ in $(seq 600); do
        grep -q '^running SEND' "$work/$name-send/err" 2>/dev/null && break
        sleep 0.05
      done
    done
  fi
  for name in "$@"; do register_run "$name" "${TOGETHER:-}" & jobs_+=($!); done
  wait "${jobs_[@]}" || true
  for name in "$@"; do
    read -r r f x <"$work/$name-sip/result"
    [[ "$r" =~ ^[0-9]+$ ]] || { notes+=" $name:no-REGISTER-figures($(grep -m1 -i error "$work/$name-sip/sipp.out" | cut -c1-80))"; r=0; }
    reg=$((reg + r))
    [ "$f" = 0 ] || [ "$f" = - ] || notes+=" $name:$f-REGISTERs-failed"
    [ "$x" = 0 ] || [ "$x" = - ] || notes+=" $name:$x-retransmissions"
    cat "$work/$name-sip/rtt" >>"$work/$setup.rtt"
  done
  sort -n -o "$work/$setup.rtt" "$work/$setup.rtt"
  jobs_=()
  [ -n "${TOGETHER:-}" ] || for name in "$@"; do send_run "$name" & jobs_+=($!); done
  [ "${#jobs_[@]}" -eq 0 ] || wait "${jobs_[@]}" || true
  for name in "$@"; do
    read -r r x f <"$work/$name-send/result"
    if [[ "$r" =~ ^[0-9]+$ ]]; then
      send=$((send + r))
      send_p99=$(awk -v a="$send_p99" -v b="$x" 'BEGIN {print (b + 0 > a + 0) ? b : a}')
    else
      notes+=" $name:rest-bench-failed($(tail -1 "$work/$name-send/err"))"
    fi
    [ "$f" = 0 ] || [ "$f" = - ] || notes+=" $name:$f-SENDs-failed($(grep -m1 'the first:' "$work/$name-send/out" | sed 's/.*the first: //'))"
  done
  for name in "$@"; do
    n=$(grep -ciE 'duplicate key|unique constraint|violates' "$work/$name.err" || true)
    [ "$n" = 0 ] || notes+=" $name:$n-key-collisions-in-its-log"
  done
  [ -z "${TOGETHER:-}" ] || notes+=" REGISTERs-asked-at-${TOGETHER}/s-during-the-SENDs"
  echo "$setup $reg $(percentile 99 "$work/$setup.rtt") $send $send_p99${notes:+ $notes}" >>"$work/table"
}

# new_database NAME: a fresh PostgreSQL database for this run, its URL in $db (dropped at the
# end; not a command substitution, so the list of databases to drop is this shell's).
new_database() {
  local name="restsip_bench_$$_$1"
  psql -q "$PG/postgres" -c "CREATE DATABASE $name" >/dev/null
  databases+=("$name")
  db="$PG/$name"
}

half=$((USERS / 2))
: >"$work/table"

log "sqlite x1"
start_relay sq "sqlite:$work/relay.db" "$work"; started+=("$sq_pid")
signup_users "$sq_http" 1 "$USERS" "$work/sq.csv"
measure "sqlite-x1" sq
# The same relay with a REGISTER storm during the SENDs: REGISTERs at half the rate it just
# answered alone (BOTH_RATE to choose), SENDs as fast as they go. Both share the store's turn
# to write (refreshes in groups written behind, SENDs in theirs) and the two cores.
read -r _ alone _ <"$work/table"
TOGETHER=${BOTH_RATE:-$(( ${alone:-0} > 1 ? alone / 2 : 1000 ))} measure "sqlite-both" sq
stop_relays

log "postgres x1"
new_database one
start_relay pg "$db" "$work"; started+=("$pg_pid")
signup_users "$pg_http" 1 "$USERS" "$work/pg.csv"
measure "postgres-x1" pg
stop_relays

log "postgres x2 (one database)"
new_database two
start_relay pga "$db" "$work"; started+=("$pga_pid")
start_relay pgb "$db" "$work"; started+=("$pgb_pid")
signup_users "$pga_http" 1 "$half" "$work/pga.csv"
signup_users "$pgb_http" $((half + 1)) "$USERS" "$work/pgb.csv"
measure "postgres-x2" pga pgb
stop_relays

echo
echo "Store engines: REGISTER/s and SEND/s, same run (${SECS} s each after ${WARMUP} s warm-up; $USERS users over $TRANSPORT,"
echo "sipp closed loop of $CONCURRENT per relay; SEND: $SENDERS senders per relay; $(nproc) cores shared with the clients;"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-12s %11s %8s %8s %8s %9s %9s  %s\n' setup "REGISTER/s" "p99 ms" "ratio" "SEND/s" "p99 ms" "ratio" notes
read -r _ ref_reg _ ref_send _ <"$work/table"
while read -r setup reg rp99 send sp99 notes; do
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
  printf '%-12s %11s %8s %8s %8s %9s %9s  %s\n' "$setup" "$reg" "$rp99" "$(ratio "$reg" "$ref_reg")" \
    "$send" "$sp99" "$(ratio "$send" "$ref_send")" "$notes"
done <"$work/table"
