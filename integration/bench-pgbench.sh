#!/usr/bin/env bash
# pgbench -S through shardgate over 2 shards, straight to one PostgreSQL
# server, and through pgbouncer (transaction pooling), interleaved, in
# simple and extended mode; medians, ratios, and the CPU time shardgate
# spends per transaction (utime+stime from /proc over each run). Then the
# peak RSS of shardgate while it streams a large single-shard result.
#
#   ./integration/bench-pgbench.sh            # 3 rounds of 10 s per run
#   ROUNDS=5 SECONDS_PER_RUN=20 ./integration/bench-pgbench.sh
#
# Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${1:-}" != "--inside" ]; then
    ./integration/install.sh >/dev/null
    cargo build --release --quiet
    exec ./target/release/shardgate cluster --backend postgres --shards 2 -- "$0" --inside
fi

ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CLIENTS="${CLIENTS:-8}"
SCALE="${SCALE:-10}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# shardgate over both shards.
sg_port="$(free_port)"
cat > "$work/rules.toml" <<EOF
backend = "postgres"
[[shard]]
name = "s0"
host = "127.0.0.1"
port = $SHARDGATE_S0_PORT
database = "shardgate"
user = "shardgate"
password = "shardgate"
[[shard]]
name = "s1"
host = "127.0.0.1"
port = $SHARDGATE_S1_PORT
database = "shardgate"
user = "shardgate"
password = "shardgate"
[keyspace.account]
algorithm = "hash"
key_type = "integer"
[[table]]
name = "pgbench_accounts"
keyspace = "account"
key = "aid"
[[table]]
name = "pgbench_history"
keyspace = "account"
key = "aid"
[[table]]
name = "pgbench_branches"
reference = true
[[table]]
name = "pgbench_tellers"
reference = true
EOF
cat > "$work/shardgate.toml" <<EOF
rules = "rules.toml"
${THREADS:+threads = $THREADS}
[postgres]
listen = "127.0.0.1:$sg_port"
[[user]]
name = "bench"
password = "bench"
[pool]
size = 16
[transactions]
policy = "multi_shard_writes"
EOF
SHARDGATE_LOG=warn ./target/release/shardgate serve --config "$work/shardgate.toml" &
sg_pid=$!
sleep 1
sg_url="postgres://bench:bench@127.0.0.1:$sg_port/shardgate"
PGPASSWORD=bench pgbench -i -q -s "$SCALE" "$sg_url" >/dev/null 2>&1

# The same data straight on one server, in a database of its own.
direct_db="postgres://shardgate:shardgate@127.0.0.1:$SHARDGATE_S0_PORT"
psql -X -q "$direct_db/shardgate" -c "CREATE DATABASE direct"
direct_url="$direct_db/direct"
pgbench -i -q -s "$SCALE" "$direct_url" >/dev/null 2>&1

# pgbouncer in transaction mode in front of that database.
pgb_port="$(free_port)"
cat > "$work/pgbouncer.ini" <<EOF
[databases]
direct = host=127.0.0.1 port=$SHARDGATE_S0_PORT dbname=direct user=shardgate password=shardgate
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
auth_type = trust
auth_file = $work/users.txt
pool_mode = transaction
default_pool_size = 16
max_client_conn = 100
unix_socket_dir =
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
echo '"shardgate" ""' > "$work/users.txt"
pgbouncer_bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$work"
    runuser -u postgres -- "$pgbouncer_bin" -d "$work/pgbouncer.ini"
else
    "$pgbouncer_bin" -d "$work/pgbouncer.ini"
fi
sleep 1
pgb_url="postgres://shardgate@127.0.0.1:$pgb_port/direct"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$sg_pid/stat"; }
hz="$(getconf CLK_TCK)"

run() { # target mode -> tps txns
    local url="$1" mode="$2"
    PGPASSWORD=bench pgbench -S -n -M "$mode" -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" "$url" 2>/dev/null \
        | awk '/actually processed/ {split($NF, a, "/"); n=a[1]} /^tps/ {t=$3} END {print t, n}'
}

declare -A results
cpu_report=""
for round in $(seq 1 "$ROUNDS"); do
    for mode in simple extended; do
        for target in direct pgbouncer shardgate; do
            case $target in
                direct) url="$direct_url" ;;
                pgbouncer) url="$pgb_url" ;;
                shardgate) url="$sg_url" ;;
            esac
            before="$(cpu_ticks)"
            read -r tps txns < <(run "$url" "$mode")
            after="$(cpu_ticks)"
            results["$target,$mode"]+="$tps "
            if [ "$target" = shardgate ] && [ "${txns:-0}" -gt 0 ]; then
                us=$(python3 -c "print(round(($after - $before) / $hz / $txns * 1e6, 1))")
                cpu_report+="round $round $mode: ${us} µs of shardgate CPU per transaction ($txns transactions)"$'\n'
            fi
            echo "round $round $mode $target: $tps tps" >&2
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "pgbench -S, scale $SCALE, $CLIENTS clients, $SECONDS_PER_RUN s per run, $ROUNDS interleaved rounds (median tps):"
echo
echo "| mode | direct (1 server) | pgbouncer (transaction) | shardgate (2 shards) | shardgate / pgbouncer | shardgate / direct |"
echo "|---|---|---|---|---|---|"
for mode in simple extended; do
    d=$(echo "${results[direct,$mode]}" | median)
    p=$(echo "${results[pgbouncer,$mode]}" | median)
    s=$(echo "${results[shardgate,$mode]}" | median)
    echo "| $mode | $d | $p | $s | $(python3 -c "print(round($s / $p, 2))") | $(python3 -c "print(round($s / $d, 2))") |"
done
echo
printf '%s' "$cpu_report"

# Peak RSS while streaming a large single-shard result.
rss() { awk '/VmHWM/ {print $2}' "/proc/$sg_pid/status"; }
before_rss="$(rss)"
PGPASSWORD=bench psql -X -q "$sg_url" -c "SELECT g, repeat('x', 200) FROM generate_series(1, 3000000) g" -o /dev/null
after_rss="$(rss)"
echo
echo "peak RSS of shardgate: ${before_rss} kB before, ${after_rss} kB after streaming 3,000,000 rows (~640 MB) from one shard"
kill "$sg_pid"
kill "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true
