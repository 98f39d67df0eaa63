#!/usr/bin/env bash
# The cost of TLS: uploads per second per core, plaintext versus https, same bodies.
#   plain: wrk --http--> pyrogate --http--> nginx
#   tls:   wrk --https-> pyrogate (receiver tls) --https--> nginx (tls_config.ca_file)
# Both legs are encrypted in the tls run, so the difference is pyrogate's whole TLS bill
# (server-side decrypt + client-side encrypt of every body) plus wrk's and nginx's.
# Needs wrk (built with TLS, as Debian's), nginx-light, openssl, bc and a release build
# (cargo build --release -p pyrogate --bin pyrogate). Everything listens on 127.0.0.1; every
# process started here is stopped by PID at the end. pyrogate runs on one core (--cores=1), so
# uploads/s is per core; gateway CPU per 1,000 uploads is measured from /proc.
set -euo pipefail
for tool in wrk nginx openssl bc; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light openssl bc" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${PYROGATE_BIN:-$ROOT/target/release/pyrogate}
[ -x "$BIN" ] || { echo "no release binary at $BIN: run cargo build --release -p pyrogate --bin pyrogate" >&2; exit 2; }
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

# A private CA and one certificate for 127.0.0.1/localhost (used by nginx and pyrogate).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=tls-cost CA" -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout "$W/srv.key" -out "$W/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$W/ext"
openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/ext" -out "$W/srv.pem" 2>/dev/null

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
  server {
    listen 127.0.0.1:18443 ssl;
    ssl_certificate $W/srv.pem;
    ssl_certificate_key $W/srv.key;
    location / { return 200; }
  }
}
NGX
nginx -c "$W/nginx.conf" & NGINX_PID=$!
sleep 0.5

cat > "$W/plain.alloy" <<CFG
pyroscope.receive_http "default" {
	http {
		listen_address = "127.0.0.1"
		listen_port    = 19999
	}
	forward_to = [pyroscope.write.a.receiver]
}
pyroscope.write "a" {
	endpoint {
		url = "http://127.0.0.1:18080"
	}
}
CFG
cat > "$W/tls.alloy" <<CFG
pyroscope.receive_http "default" {
	http {
		listen_address = "127.0.0.1"
		listen_port    = 19999
		tls {
			cert_file = "$W/srv.pem"
			key_file  = "$W/srv.key"
		}
	}
	forward_to = [pyroscope.write.a.receiver]
}
pyroscope.write "a" {
	endpoint {
		url = "https://127.0.0.1:18443"
		tls_config {
			ca_file = "$W/ca.pem"
		}
	}
}
CFG

Q='/ingest?name=myapp.cpu%7Benv%3Dstaging%2Cregion%3Deu%7D&from=1700000000&until=1700000010&spyName=gospy&sampleRate=100'
TICK=$(getconf CLK_TCK)
cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }

run() { # name scheme gateway-pid
  local name=$1 scheme=$2 gp=$3
  local g0 g1 out total rps p50 p99 bad
  g0=$(cpu_of "$gp")
  out=$(wrk -t1 -c"$CONNS" -d"$DUR" -s "$W/post.lua" --latency "$scheme://127.0.0.1:19999$Q")
  g1=$(cpu_of "$gp")
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}'); p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  printf "%-8s uploads=%-8s uploads/s/core=%-9s p50=%-8s p99=%-8s non2xx=%-4s gateway_cpu_ms/1k=%s\n" \
    "$name" "$total" "$rps" "$p50" "$p99" "${bad:-0}" \
    "$(echo "scale=1; ($g1-$g0)*1000/$TICK*1000/$total" | bc)"
}

for mode in plain tls; do
  "$BIN" run --cores=1 --server.http.listen-addr=127.0.0.1:0 "$W/$mode.alloy" 2>"$W/$mode.log" & GW_PID=$!
  for _ in $(seq 100); do grep -q 'pyrogate ready' "$W/$mode.log" && break; sleep 0.1; done
  scheme=http; [ "$mode" = tls ] && scheme=https
  run "$mode" "$scheme" "$GW_PID"
  kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=""
  grep -o 'msg="shutdown complete".*' "$W/$mode.log" | sed 's/ ts=.*//; s/^/         /'
done
