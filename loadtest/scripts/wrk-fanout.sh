#!/usr/bin/env bash
# Quick, reproducible throughput check until `loadtest compare` exists:
#   wrk -> nginx (baseline), and wrk -> pyrogate -> nginx at fan-out 1 and 2.
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light) and a release build
# (cargo build --release). Everything listens on 127.0.0.1; every process started here is
# stopped by PID at the end. Prints uploads/s, latency, CPU per 1,000 uploads and peak RSS.
set -euo pipefail
for tool in wrk nginx bc; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light bc" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PYROGATE_BIN:-$ROOT/target/release/pyrogate}
[ -x "$BIN" ] || { echo "no release binary at $BIN: run cargo build --release" >&2; exit 2; }
DUR=${DURATION:-10s}
CONNS=${CONNECTIONS:-32}
BODY_BYTES=${BODY_BYTES:-10240}
W=$(mktemp -d)
NGINX_PID=""
GW_PID=""
cleanup() {
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

head -c "$BODY_BYTES" /dev/urandom > "$W/body.bin"
cat > "$W/post.lua" <<LUA
local f = io.open("$W/body.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
cat > "$W/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 1m;
  client_max_body_size 64m;
  keepalive_requests 1000000;
  client_body_temp_path $W/body;
  server { listen 127.0.0.1:18080; location / { return 200; } }
  server { listen 127.0.0.1:18081; location / { return 200; } }
}
NGX
nginx -c "$W/nginx.conf" & NGINX_PID=$!
sleep 0.5
receiver='pyroscope.receive_http "default" {
	http {
		listen_address = "127.0.0.1"
		listen_port    = 19999
	}
	forward_to = FORWARD
}'
write_a='pyroscope.write "a" {
	endpoint {
		url = "http://127.0.0.1:18080"
	}
}'
write_b='pyroscope.write "b" {
	endpoint {
		url = "http://127.0.0.1:18081"
	}
	external_labels = { env = "prod" }
}'
printf '%s\n%s\n' "${receiver/FORWARD/[pyroscope.write.a.receiver]}" "$write_a" > "$W/fan1.alloy"
printf '%s\n%s\n%s\n' "${receiver/FORWARD/[pyroscope.write.a.receiver, pyroscope.write.b.receiver]}" "$write_a" "$write_b" > "$W/fan2.alloy"

Q='/ingest?name=myapp.cpu%7Benv%3Dstaging%2Cregion%3Deu%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100'
TICK=$(getconf CLK_TCK)
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
tree_cpu() { local t=0; for p in "$@"; do t=$((t + $(cpu_of "$p"))); done; echo "$t"; }

run() { # name port gateway-pid-or-empty
  local name=$1 port=$2 gp=${3:-}
  local nginx_pids; nginx_pids=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
  local n0 g0=0 n1 g1=0
  n0=$(tree_cpu $nginx_pids); [ -n "$gp" ] && g0=$(cpu_of "$gp")
  local out; out=$(wrk -t1 -c"$CONNS" -d"$DUR" -s "$W/post.lua" --latency "http://127.0.0.1:$port$Q")
  n1=$(tree_cpu $nginx_pids); [ -n "$gp" ] && g1=$(cpu_of "$gp")
  local total rps p50 p99 bad
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  printf "%-16s uploads=%-8s uploads/s=%-9s p50=%-8s p99=%-8s non2xx=%-4s gateway_cpu_ms/1k=%-6s nginx_cpu_ms/1k=%s" \
    "$name" "$total" "$rps" "$p50" "$p99" "${bad:-0}" \
    "$(echo "scale=1; ($g1-$g0)*1000/$TICK*1000/$total" | bc)" \
    "$(echo "scale=1; ($n1-$n0)*1000/$TICK*1000/$total" | bc)"
  [ -n "$gp" ] && printf ' peak_rss_kib=%s' "$(awk '/VmHWM/ {print $2}' "/proc/$gp/status")"
  echo
}

run direct-nginx 18080
for cfg in fan1 fan2; do
  "$BIN" run --cores="${CORES:-1}" --server.http.listen-addr=127.0.0.1:0 "$W/$cfg.alloy" 2>"$W/$cfg.log" & GW_PID=$!
  for _ in $(seq 100); do grep -q 'pyrogate ready' "$W/$cfg.log" && break; sleep 0.1; done
  run "pyrogate-$cfg" 19999 "$GW_PID"
  kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=""
  grep -o 'msg="shutdown complete".*' "$W/$cfg.log" | sed 's/ ts=.*//; s/^/                 /'
done
