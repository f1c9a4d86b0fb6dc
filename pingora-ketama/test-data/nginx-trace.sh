#!/usr/bin/env bash
# Regenerates nginx-trace.csv: which upstream real nginx picks with `hash $request_uri consistent`
# for a fixed list of keys, over several server sets. Everything runs on loopback addresses.
#
# Usage: bash test-data/nginx-trace.sh   (needs nginx and curl; Debian: apt-get install nginx-light)
#
# Output lines: `SET,KEY,UPSTREAM`, where SET names a server set defined in tests.rs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'kill "$nginx_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# Sets of upstream servers: name, front port, then `addr[@weight]` entries.
sets=(
    "pair 18081 127.0.0.1:7777 127.0.0.1:7778"
    "weighted 18082 127.0.0.2:8001@1 127.0.0.3:8002@2 127.0.0.4:8003@3"
    "nine 18083 127.0.0.11:9000 127.0.0.12:9000 127.0.0.13:9000 127.0.0.14:9000 127.0.0.15:9000 127.0.0.16:9000 127.0.0.17:9000 127.0.0.18:9000 127.0.0.19:9000"
    "ipv6 18084 [::1]:7781 [::1]:7782 [::1]:7783"
)

{
    echo "daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;"
    echo "events { worker_connections 64; }"
    echo "http {"
    echo "  access_log off; client_body_temp_path $work; proxy_temp_path $work;"
    echo "  log_format trace '\$trace_set,\$request_uri,\$upstream_addr';"
    backends=()
    for set in "${sets[@]}"; do
        read -r name port servers <<<"$set"
        echo "  upstream $name { hash \$request_uri consistent;"
        for s in $servers; do
            addr="${s%@*}"
            weight=1
            [[ "$s" == *@* ]] && weight="${s#*@}"
            echo "    server $addr weight=$weight;"
            backends+=("$addr")
        done
        echo "  }"
        echo "  server { listen 127.0.0.1:$port; set \$trace_set $name;"
        echo "    access_log $work/trace.log trace;"
        echo "    location / { proxy_pass http://$name; } }"
    done
    echo "  server {"
    for b in "${backends[@]}"; do echo "    listen $b;"; done
    echo "    location / { return 200 ok; } }"
    echo "}"
} >"$work/nginx.conf"

nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:18081/ready" && break
    sleep 0.1
done

keys=("/some/path" "/some/longer/path" "/sad/zaidoon" "/g" "/" "/a" "/b" "/index.html")
for i in $(seq 0 199); do keys+=("/key/$i"); done

for set in "${sets[@]}"; do
    read -r name port _ <<<"$set"
    for k in "${keys[@]}"; do
        curl -s -o /dev/null "http://127.0.0.1:$port$k"
    done
done

kill "$nginx_pid"
wait "$nginx_pid" 2>/dev/null || true
grep -v ',/ready,' "$work/trace.log" >"$here/nginx-trace.csv"
wc -l "$here/nginx-trace.csv"
