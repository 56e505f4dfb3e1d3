# shellcheck shell=bash
# Shared helpers of bench/run: start and stop a release broker on a free
# loopback port, create the bench user with a token and an access key, seed
# VM rows (through cloudbroker-bench-seed, i.e. the broker's own store code),
# run wrk and read its figures, serve identical bytes with nginx.
# Every process started here is recorded and stopped by its pid on exit.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cloudbroker-target}"
BROKER_BIN="${BROKER_BIN:-$CARGO_TARGET_DIR/release/cloudbroker}"
SEED_BIN="${SEED_BIN:-$CARGO_TARGET_DIR/release/cloudbroker-bench-seed}"
PY="$REPO/.venv/bin/python"
WORK="${BENCH_WORK:-$(mktemp -d /tmp/cloudbroker-bench.XXXXXX)}"
RESULTS="$WORK/results.tsv"
ADMIN_PW="bench-admin-password-$$"
USER_PW="bench-user-password-$$"
WRK_SECS="${WRK_SECS:-10}"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# record NAME FIGURE REFERENCE RATIO GOAL MET  (one row of the final table)
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }

# start_broker DIR [DATABASE_URL]: sets BROKER_URL, BROKER_PID.
start_broker() {
  local dir="$1" db="${2:-}" port
  port=$(free_port)
  mkdir -p "$dir"
  local env=(CLOUDBROKER_LISTEN="127.0.0.1:$port" CLOUDBROKER_DATA_DIR="$dir" CLOUDBROKER_CONNECTORS_DIR="${CONNECTORS_DIR:-$BENCH_DIR/connectors.d}"
    CLOUDBROKER_ADMIN_PASSWORD="$ADMIN_PW" CLOUDBROKER_RECONCILE_INTERVAL_SECS="${BROKER_RECONCILE_SECS:-86400}" CLOUDBROKER_LOG_LEVEL=${BENCH_LOG_LEVEL:-warn})
  [ -n "$db" ] && env+=(CLOUDBROKER_DATABASE_URL="$db")
  env "${env[@]}" "$BROKER_BIN" serve >"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  BROKER_URL="http://127.0.0.1:$port"
  BROKER_DB="${db:-sqlite://$dir/cloudbroker.db}"
  local i
  for i in $(seq 1 3000); do
    curl -sf "$BROKER_URL/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$dir/broker.log" >&2; return 1; }
    sleep 0.01
  done
  log "broker did not become ready"; return 1
}

# rss_mb PID: the process's resident set in MB (one decimal).
rss_mb() { awk '/VmRSS/ {printf "%.1f\n", $2 / 1024}' "/proc/$1/status"; }

stop_broker() {
  kill "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
}

# setup_user: creates user `bench`; sets ADMIN_TOKEN (super's), TOKEN, AK, SK.
setup_user() {
  ADMIN_TOKEN=$(curl -sf -u "super:$ADMIN_PW" -X POST "$BROKER_URL/api/v1/tokens" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    -d "{\"name\":\"bench\",\"password\":\"$USER_PW\",\"admin\":false}" "$BROKER_URL/api/v1/users" >/dev/null
  TOKEN=$(curl -sf -u "bench:$USER_PW" -X POST "$BROKER_URL/api/v1/tokens" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  local keys
  keys=$(curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$BROKER_URL/api/v1/users/bench/access-keys")
  AK=$(printf '%s' "$keys" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_key_id"])')
  SK=$(printf '%s' "$keys" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["secret_access_key"])')
}

# seed ROWS LIVE: VM rows into the running broker's database.
seed() {
  "$SEED_BIN" --database-url "$BROKER_DB" --user bench --instance bench --rows "$1" --live "$2" --other-users 100 --terminated-pct 90 >&2
  # A bulk load: let PostgreSQL take its statistics (and set its visibility
  # map) now, as an operator would after one, rather than have autovacuum do
  # it in the middle of a measurement; and write the load's dirty pages out
  # now (CHECKPOINT, as pgbench does before it measures): in one run the
  # checkpoint after the 100,000-row load fell on the first half minute of
  # measurement and put the p99 of those rounds at 20-38 ms against 3 ms after.
  case "$BROKER_DB" in postgres*) psql "$BROKER_DB" -qc "VACUUM ANALYZE" -qc "CHECKPOINT" >/dev/null ;; esac
}

# wrk_rps URL LUA [THREADS CONNS]: prints requests/s (and checks no errors / non-2xx).
wrk_rps() {
  local url="$1" lua="$2" t="${3:-2}" c="${4:-4}" out
  out=$(wrk -t"$t" -c"$c" -d"${WRK_SECS}s" --timeout 10s -s "$lua" "$url" 2>&1)
  printf '%s\n' "$out" >> "$WORK/wrk.log"
  if printf '%s' "$out" | grep -q 'Non-2xx'; then log "non-2xx answers from $url: $(printf '%s' "$out" | grep Non-2xx)"; echo 0; return; fi
  printf '%s' "$out" | awk '/Requests\/sec/ {printf "%d\n", $2}'
}

# wrk_latency URL LUA: prints "p50_ms p99_ms" for one connection, sequential requests.
wrk_latency() {
  local out
  out=$(wrk -t1 -c1 -d"${WRK_SECS}s" --latency -s "$2" "$1" 2>&1)
  printf '%s\n' "$out" >> "$WORK/wrk.log"
  printf '%s' "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)} END {printf "%.3f %.3f\n", p50, p99}'
}

# median_pair FILE: the medians of the two columns ("p50 p99" lines) of FILE.
median_pair() {
  "$PY" -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
print(f"{statistics.median(r[0] for r in rows):.3f} {statistics.median(r[1] for r in rows):.3f}")' "$1"
}

# bearer_lua PATH: a wrk script sending GET PATH with the bench token.
bearer_lua() {
  local f="$WORK/bearer-$RANDOM.lua"
  printf 'wrk.method = "GET"\nwrk.path = "%s"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$1" "$TOKEN" > "$f"
  echo "$f"
}

# The ceiling (issue 28): ONE static server configuration for every page
# benchmark, so that a ratio means the same thing everywhere. nginx with two
# workers (the machine's two cores, as the broker has), keep-alive without a
# request limit, no access log, serving the broker's own answer bytes saved
# to a file; a POST is answered like a GET (`error_page 405 =200 $uri`: the
# static module refuses POST, the internal redirect serves the file). Its
# figures are taken in the same run, alternating with the broker's.
# start_nginx: starts it once per run on a free port (sets NGINX_URL); it
# serves $WORK/static.
start_nginx() {
  [ -n "${NGINX_URL:-}" ] && kill -0 "${NGINX_PID:-0}" 2>/dev/null && return 0
  local port; port=$(free_port)
  mkdir -p "$WORK/nginx" "$WORK/static/ceiling"
  # nginx's workers run as an unprivileged user: they must reach the files
  # (mktemp -d makes $WORK private to its owner).
  chmod o+x "$WORK" && chmod -R o+rX "$WORK/static"
  cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  types { text/xml xml; application/json json; text/html html; text/csv csv; }
  server {
    listen 127.0.0.1:$port;
    root $WORK/static;
    error_page 405 =200 \$uri;
  }
}
CONF
  nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  NGINX_URL="http://127.0.0.1:$port"
  local i
  for i in $(seq 1 100); do curl -s -o /dev/null "$NGINX_URL/" && return 0; sleep 0.05; done
  return 1
}

# static_lua PATH LUA_OF_BROKER: the same script (method, headers, body) as a
# broker's, another path; the broker's query string is kept (nginx ignores
# it), so the request is the broker's request, byte for byte but the path.
static_lua() {
  local f="$WORK/static-$RANDOM.lua"
  "$PY" - "$1" "$2" > "$f" <<'PYEOF'
import re, sys
path, src = sys.argv[1], open(sys.argv[2]).read()
def repl(m):
    old = m.group(1)
    q = old.split("?", 1)[1] if "?" in old else ""
    return 'wrk.path = "%s%s"' % (path, "?" + q if q else "")
print(re.sub(r'^wrk\.path = "((?:[^"\\]|\\.)*)"', repl, src, count=1, flags=re.M), end="")
PYEOF
  echo "$f"
}

# page_vs_ceiling LABEL BROKER_URL LUA FILE GOAL_PCT [REF_EXTRA [RATIO_EXTRA]]:
# one page benchmark against the ceiling. FILE holds the broker's answer to
# LUA (saved beforehand); nginx serves those bytes to the same script. The
# broker and the ceiling are measured alternately, CEILING_ROUNDS times each
# (default 2), and the medians compared; the row shows both figures, the
# ceiling's own next to the ratio, and is met at GOAL_PCT % of it.
page_vs_ceiling() {
  local label="$1" url="$2" lua="$3" file="$4" goal="$5" ref_extra="${6:-}" ratio_extra="${7:-}"
  start_nginx
  local ext="${file##*.}" name
  name="page-$(printf '%s' "$label" | tr -c 'A-Za-z0-9' '-' | tr -s '-')"
  cp "$file" "$WORK/static/ceiling/$name.$ext"
  chmod o+r "$WORK/static/ceiling/$name.$ext"
  local nlua; nlua=$(static_lua "/ceiling/$name.$ext" "$lua")
  local bytes; bytes=$(stat -c %s "$file")
  # The ceiling answers the broker's request with the very bytes.
  curl -sf "$NGINX_URL/ceiling/$name.$ext" | cmp -s - "$file" || { log "$label: the ceiling does not serve the saved answer"; return 1; }
  local r b=() n=()
  for r in $(seq 1 "${CEILING_ROUNDS:-2}"); do
    b+=("$(wrk_rps "$url" "$lua")")
    n+=("$(wrk_rps "$NGINX_URL" "$nlua")")
  done
  local bm nm
  bm=$(median "${b[@]}"); nm=$(median "${n[@]}")
  log "$label: broker ${b[*]} req/s, ceiling ${n[*]} req/s ($bytes bytes)"
  record "$label (req/s)" "$bm" "ceiling $nm req/s (nginx, same $bytes B; rounds: broker $(IFS=/; echo "${b[*]}"), ceiling $(IFS=/; echo "${n[*]}"))${ref_extra:+; $ref_extra}" \
    "$(pct "$bm" "$nm") of ceiling${ratio_extra:+; $ratio_extra}" ">= $goal% of ceiling" "$(met "$(frac "$bm" "$nm")" '>=' "$(frac "$goal" 100)")"
  PAGE_RPS="$bm"; CEILING_RPS="$nm"
}

# median N...: the median of the numbers given (integer).
median() { "$PY" -c 'import statistics, sys; print(int(statistics.median(float(a) for a in sys.argv[1:])))' "$@"; }

# start_moto: a fresh moto (EC2 only) on a free port; sets MOTO_URL, MOTO_PID.
start_moto() {
  local out="$WORK/moto-$RANDOM.out"
  # --indexed-tags: moto's own per-instance tag lookup scans every tag of the
  # account (N x T for N instances carrying T tags in all), which the broker's
  # tagged VMs pay and an untagged direct run does not (see the script's doc;
  # the connector test indexed_tag_lookups_answer_as_moto_does checks the
  # answers are the same). BENCH_MOTO_PLAIN=1 runs moto as shipped.
  local opts=(--ec2-only)
  [ -n "${BENCH_MOTO_PLAIN:-}" ] || opts+=(--indexed-tags)
  "$PY" "$REPO/scripts/moto_fault_server.py" "${opts[@]}" > "$out" 2>"$out.err" &
  MOTO_PID=$!
  PIDS+=("$MOTO_PID")
  local i
  for i in $(seq 1 300); do grep -q READY "$out" 2>/dev/null && break; sleep 0.1; done
  MOTO_URL="http://127.0.0.1:$(awk '/READY/ {print $2}' "$out")"
}

# ratio A B: A/B as a percentage with one decimal.
pct() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{100*a/b:.1f}%' if b else 'n/a')" "$1" "$2"; }
ratio() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
# frac A B: A/B unrounded (what goals are judged on; `ratio` is for show).
frac() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(a/b if b else 'n/a')" "$1" "$2"; }
# fsum A B / fsub A B: A+B and A-B (seconds, 3 decimals); per_ms SECONDS N: SECONDS/N in ms (2 decimals).
fsum() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) + float(sys.argv[2]):.3f}')" "$1" "$2"; }
fsub() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.3f}')" "$1" "$2"; }
per_ms() { "$PY" -c "import sys; n=int(sys.argv[2]); print(f'{1000*float(sys.argv[1])/n:.2f}' if n else 'n/a')" "$1" "$2"; }
# met VALUE OP GOAL ("not measured" when VALUE is not a number: a reference that failed)
met() { "$PY" -c "
import sys
try: v = float(sys.argv[1])
except ValueError: print('not measured'); sys.exit()
op, g = sys.argv[2], float(sys.argv[3])
print('yes' if (v >= g if op == '>=' else v <= g) else 'NO')" "$1" "$2" "$3"; }
