#!/usr/bin/env bash
# A local three-node Cairn cluster on loopback, for trying things out.
#   scripts/cluster.sh start   # nodes 1..3: HTTP 127.0.0.1:4001/4011/4021, Raft 4002/4012/4022
#   scripts/cluster.sh status
#   scripts/cluster.sh stop    # SIGTERM every node (the data stays in ./cluster-data)
#   scripts/cluster.sh clean   # stop and delete ./cluster-data
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CLUSTER_BIN:-bin/cairn}
DIR=${CLUSTER_DIR:-cluster-data}
SECRET=${CAIRN_CLUSTER_SECRET:-local-cluster-secret-change-me}
NODES="1 127.0.0.1:4002 127.0.0.1:4001,2 127.0.0.1:4012 127.0.0.1:4011,3 127.0.0.1:4022 127.0.0.1:4021"

start() {
	mkdir -p "$DIR"
	for i in 1 2 3; do
		pidfile="$DIR/node$i.pid"
		if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "node $i already running (pid $(cat "$pidfile"))"
			continue
		fi
		port=$((4001 + (i - 1) * 10))
		CAIRN_NODE_ID=$i \
		CAIRN_NODE_DATA_DIR="$DIR/node$i" \
		CAIRN_NODE_HTTP_ADDR="127.0.0.1:$port" \
		CAIRN_NODE_RAFT_ADDR="127.0.0.1:$((port + 1))" \
		CAIRN_CLUSTER_NODES="$NODES" \
		CAIRN_CLUSTER_SECRET="$SECRET" \
			nohup "$BIN" serve >"$DIR/node$i.log" 2>&1 &
		echo $! >"$pidfile"
		echo "node $i: http://127.0.0.1:$port (pid $!, log $DIR/node$i.log)"
	done
	for i in 1 2 3; do
		port=$((4001 + (i - 1) * 10))
		for _ in $(seq 1 100); do
			if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
			sleep 0.1
		done
	done
	"$BIN" cluster status --addr 127.0.0.1:4001 || true
	echo
	echo "stop with: make cluster-stop"
}

stop() {
	for i in 1 2 3; do
		pidfile="$DIR/node$i.pid"
		[ -f "$pidfile" ] || continue
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			echo "node $i stopped"
		fi
		rm -f "$pidfile"
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) "$BIN" cluster status --addr 127.0.0.1:4001 ;;
clean) stop; rm -rf "$DIR" ;;
*) echo "usage: $0 start|stop|status|clean" >&2; exit 2 ;;
esac
