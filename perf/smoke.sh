#!/usr/bin/env bash
# perf/smoke.sh LOADGEN - end-to-end smoke test of ringmq-loadgen.
#
# Starts Debian's mosquitto by hand (never as a service) on a free loopback
# port with a private config, runs every scenario briefly with --check (zero
# loss, no duplicates, every connection up), and stops the broker it started.
# Exit 0 pass, 1 fail, 77 skip (no mosquitto). CTest: perf/loadgen_smoke.
set -euo pipefail

LG=${1:?usage: perf/smoke.sh PATH/TO/ringmq-loadgen}
MOSQ=${MOSQUITTO:-/usr/sbin/mosquitto}
if [[ ! -x "$MOSQ" ]]; then
    MOSQ=$(command -v mosquitto || true)
fi
if [[ -z "$MOSQ" || ! -x "$MOSQ" ]]; then
    echo "smoke: mosquitto not found; skipping"
    exit 77
fi

work=$(mktemp -d)
pid=
cleanup() {
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + RANDOM % 40000))
}

port=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
CONF
"$MOSQ" -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
pid=$!
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done

fails=0
run() {
    local name=$1
    shift
    if ! "$LG" "$@" --port "$port" --broker-pid "$pid" --check --quiet --warmup 0.3 \
        --duration 1 --drain 3 >"$work/out.json" 2>"$work/err.txt"; then
        echo "smoke: FAIL $name"
        cat "$work/err.txt" "$work/out.json"
        fails=$((fails + 1))
        return
    fi
    if [[ "$1" != conn ]] && ! grep -q '"received_measured":[1-9]' "$work/out.json"; then
        echo "smoke: FAIL $name: nothing received"
        cat "$work/out.json"
        fails=$((fails + 1))
        return
    fi
    echo "smoke: ok   $name"
}

run "p2p qos0" p2p --pairs 10 --qos 0
run "p2p qos1 2 threads" p2p --pairs 10 --qos 1 --threads 2
run "p2p qos2 rate 200" p2p --pairs 5 --qos 2 --rate 200
run "fanout 1->20 qos1" fanout --pubs 1 --subs 20 --qos 1
run "fanin 20->1 qos1" fanin --pubs 20 --subs 1 --qos 1
run "fanin 10->shared 3" fanin --pubs 10 --shared 3
run "conn 200 src-range" conn --conns 200 --connect-rate 1000 --keepalive 1 \
    --src-range 127.0.0.2-127.0.0.20
if ! kill -0 "$pid" 2>/dev/null; then
    echo "smoke: mosquitto died"
    cat "$work/mosquitto.log"
    exit 1
fi
if ((fails > 0)); then
    exit 1
fi
