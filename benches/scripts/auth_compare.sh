#!/usr/bin/env bash
# Tern vs Mosquitto with credentials and an ACL, same files for both:
# a password file written by mosquitto_passwd (one user, "bench") and an
# ACL file of 1,000 entries (997 other users with a rule each, bench's own
# rule, two patterns). Each broker pinned to cpu 0 in turn, the generator to
# cpu 1, rounds interleaved; medians and ratios printed as a table.
#
#   cargo build --release -p tern -p tern-bench
#   benches/scripts/auth_compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
B=./target/release/tern-bench
T=./target/release/tern
dir=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$dir"' EXIT

mosquitto_passwd -c -b "$dir/passwd" bench s3cret
{
    for i in $(seq 1 997); do printf 'user u%s\ntopic readwrite u%s/#\n' "$i" "$i"; done
    printf 'user bench\ntopic readwrite bench/#\n'
    printf 'pattern read devices/%%c/#\npattern write devices/%%c/out\n'
} > "$dir/acl"

tp=18941
mp=18942
cat > "$dir/tern.toml" <<EOT
[log]
level = "warn"
[sys]
interval = "0s"
[limits]
max_connections = 20000
[auth]
password_file = "passwd"
acl_file = "acl"
[[listener]]
name = "bench"
bind = "127.0.0.1:$tp"
allow_anonymous = false
auth = ["password_file", "acl_file"]
EOT
cat > "$dir/m.conf" <<EOT
listener $mp 127.0.0.1
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl
max_connections -1
persistence false
set_tcp_nodelay true
log_type error
user root
EOT

run() { # broker port -> "connect_per_s delivered_per_s"
    local port=$1
    local c d
    c=$(taskset -c 1 $B run --addr "127.0.0.1:$port" --username bench --password s3cret idle --conns 2000 --hold 0 \
        | awk '/connect_per_s/ {print $2}')
    d=$(taskset -c 1 $B run --addr "127.0.0.1:$port" --username bench --password s3cret pubsub --qos 0 --duration 5 \
        | awk '/delivered_per_s/ {print $2}')
    echo "$c $d"
}

declare -a tc td mc md
for r in $(seq 1 "$rounds"); do
    taskset -c 0 $T --config "$dir/tern.toml" >/dev/null 2>&1 &
    pid=$!; sleep 1
    read -r c d < <(run $tp); tc+=("$c"); td+=("$d")
    kill $pid; wait $pid 2>/dev/null || true
    taskset -c 0 /usr/sbin/mosquitto -c "$dir/m.conf" >/dev/null 2>&1 &
    pid=$!; sleep 1
    read -r c d < <(run $mp); mc+=("$c"); md+=("$d")
    kill $pid; wait $pid 2>/dev/null || true
    echo "round $r: tern ${tc[-1]} conn/s ${td[-1]} msg/s; mosquitto ${mc[-1]} conn/s ${md[-1]} msg/s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t1=$(median "${tc[@]}"); m1=$(median "${mc[@]}")
t2=$(median "${td[@]}"); m2=$(median "${md[@]}")
echo
echo "| with password file + 1,000-entry ACL | tern | mosquitto | tern/mosquitto |"
echo "|---|--:|--:|--:|"
awk -v a="$t1" -v b="$m1" 'BEGIN {printf "| connect rate (2,000 clients, 64 in flight), conn/s | %.0f | %.0f | %.2f |\n", a, b, a/b}'
awk -v a="$t2" -v b="$m2" 'BEGIN {printf "| QoS 0 10 -> 10, 64 B, msg/s | %.0f | %.0f | %.2f |\n", a, b, a/b}'
