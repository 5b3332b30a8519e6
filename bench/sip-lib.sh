# Shell helpers shared by bench/sip-register.sh and bench/store.sh (sourced, not run).
# They expect the repository root as the current directory and a function `log`.

# start_relay NAME DATABASE WORK: starts target/release/relay-server (or $RESTSIP_RELAY_BIN)
# with HTTP and SIP on free ports, digest auth off (the same work as Kamailio's registrar) and
# its per-source rate limit off (sipp floods from one address, which the limit exists to stop),
# on DATABASE (sqlite:… or postgres://…). Sets NAME_pid, NAME_http (http://…) and NAME_sip
# (IP:PORT); its output goes to WORK/NAME.out and WORK/NAME.err.
start_relay() {
  local name=$1 database=$2 work=$3 pid http sip
  mkdir -p "$work/none"
  RUST_LOG=${RUST_LOG:-warn} "${RESTSIP_RELAY_BIN:-target/release/relay-server}" \
    --http 127.0.0.1:0 --sip 127.0.0.1:0 --sip-auth off --sip-rate-limit off \
    --database "$database" --www "$work/none" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  printf -v "${name}_pid" '%s' "$pid"
  for _ in $(seq 300); do
    [ "$(wc -l <"$work/$name.out" 2>/dev/null || echo 0)" -ge 2 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  http=$(sed -n 1p "$work/$name.out" | awk '{print $NF}')
  sip=$(sed -n 2p "$work/$name.out" | awk '{print $NF}')
  [ -n "$sip" ] || { log "relay $name did not start"; cat "$work/$name.err" >&2; return 1; }
  printf -v "${name}_http" '%s' "${http%/}"
  printf -v "${name}_sip" '%s' "$sip"
}

# signup_users HTTP FIRST LAST CSV: signs up benchFIRST…benchLAST@bench.example on the relay at
# HTTP (8 at a time) and writes sipp's injection file CSV for them (field0 user@domain, field1
# the contact's user part).
signup_users() {
  local http=$1 first=$2 last=$3 csv=$4 i signups=()
  echo SEQUENTIAL >"$csv"
  for i in $(seq "$first" "$last"); do
    echo "bench$i@bench.example;bench$i" >>"$csv"
    curl -sf -o /dev/null --json "{\"email\":\"bench$i@bench.example\",\"password\":\"pw-$i\"}" "$http/user" &
    signups+=($!)
    if (( ${#signups[@]} == 8 )); then wait "${signups[@]}"; signups=(); fi
  done
  [ "${#signups[@]}" -eq 0 ] || wait "${signups[@]}"
}

# cpu_ticks PID: CPU time (clock ticks, user + system) of a server, the process and its
# children (Kamailio's workers are child processes; the relay's threads count in its own line).
cpu_ticks() {
  local pid total=0
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# free_port: a free TCP port on 127.0.0.1 (for sipp's own socket).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# percentile P FILE: the P-th percentile (nearest rank) of FILE's sorted numbers, one a line.
percentile() {
  local n
  n=$(wc -l <"$2")
  [ "$n" -gt 0 ] || { echo -; return; }
  sed -n "$(( ($1 * n + 99) / 100 ))p" "$2"
}

# sipp_rtts DIR: every REGISTER's response time (ms, as sipp measures them) of the sipp run
# in DIR (its -trace_rtt files), sorted, one a line.
sipp_rtts() {
  { cat "$1"/*_rtt.csv 2>/dev/null || true; } | awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ {print $2}' | sort -n
}
