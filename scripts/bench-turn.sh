#!/usr/bin/env bash
# Side-by-side benchmark of the embedded TURN server (turn/, run alone by turn/bench) and coturn,
# driven by coturn's own load generator. Both servers get the same TURN REST secret, loopback peers
# allowed, relay ports 61000-65535, and run pinned to one core while the load (turnutils_uclient and
# turnutils_peer) runs on another (taskset). Needs the Debian package coturn. Prints a Markdown table.
#
# For each server:
#   CPU   REPS runs of CPU_ALLOCS allocations x MSGS packets of LEN bytes every INTERVAL ms (each
#         relayed twice: client -> peer and the peer's echo back); server CPU is the utime+stime
#         delta of /proc/PID/stat over the run, divided by the packets relayed.
#   Load  LADDER allocation counts, same traffic; the largest count with zero loss (the server is
#         restarted for every run). LADDER="" skips it.
# turnutils_uclient sets up for about 0.15 s per allocation before it sends anything (it makes
# every allocation, then runs its event loop 100 ms per client): 1000 allocations relay nothing for
# ~2.5 minutes. Each run gets a deadline of SETUP_S_PER_ALLOC s per allocation + the traffic + 60 s;
# a run that misses it, or whose client fails, is reported as such (and ends the ladder).
# Usage: scripts/bench-turn.sh          (env: MSGS LEN INTERVAL CPU_ALLOCS REPS LADDER LISTENERS
#                                        SERVER_CPU LOAD_CPU SERVERS="embedded coturn"
#                                        SETUP_S_PER_ALLOC=0.3
#                                        GOROUTINE_RELAYS=1: the embedded server reads each relay
#                                        socket with its own goroutine instead of the epoll loop)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MSGS=${MSGS:-500} LEN=${LEN:-172} INTERVAL=${INTERVAL:-20} CPU_ALLOCS=${CPU_ALLOCS:-400} REPS=${REPS:-3}
LADDER=${LADDER-"200 400 800 1200 1600 2000"} SETUP_S_PER_ALLOC=${SETUP_S_PER_ALLOC:-0.3} LISTENERS=${LISTENERS:-1}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} SERVERS=${SERVERS:-"embedded coturn"}
secret=bench-secret-0123456789
port=34780
peer_port=34790
tck=$(getconf CLK_TCK)
for c in turnserver turnutils_uclient turnutils_peer taskset timeout; do
	command -v "$c" >/dev/null || { echo "bench-turn: $c missing (apt-get install coturn util-linux)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -f "$work/turnbench"
	echo "bench-turn: logs in $work" >&2
}
trap cleanup EXIT
(cd "$root" && go build -o "$work/turnbench" ./turn/bench)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

start_server() { # $1 = embedded|coturn; sets spid
	case "$1" in
	embedded)
		taskset -c "$SERVER_CPU" "$work/turnbench" -listen 127.0.0.1 -port "$port" -secret "$secret" \
			-listeners "$LISTENERS" -relay-min 61000 -relay-max 65535 ${GOROUTINE_RELAYS:+-goroutine-relays} >>"$work/embedded.log" 2>&1 &
		;;
	coturn)
		taskset -c "$SERVER_CPU" turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
			--listening-port="$port" --use-auth-secret --static-auth-secret="$secret" --realm=gw.test \
			--allow-loopback-peers --min-port=61000 --max-port=65535 --no-cli --no-tls --no-dtls \
			--simple-log --log-file="$work/coturn-turn.log" --no-stdout-log >>"$work/coturn.log" 2>&1 &
		;;
	esac
	spid=$!
	pids+=("$spid")
	for _ in $(seq 50); do ss -uln | grep -q "127.0.0.1:$port " && break; sleep 0.1; done
	sleep 0.3
}

stop_server() {
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	sleep 0.5
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run_load ALLOCS -> "sent recv lost cpu_ticks status" for one fresh server run; status is ok,
# timeout (the client missed its deadline; uclient's output is in $work/uclient-ALLOCS.log) or
# failed:<the client's last line>. Never fails itself (set -e would end the script silently).
run_load() {
	local t0 t1 out rc deadline status=ok
	deadline=$(awk -v n="$1" -v s="$SETUP_S_PER_ALLOC" -v m="$MSGS" -v i="$INTERVAL" 'BEGIN { printf "%d", n * s + m * i / 1000 + 60 }')
	t0=$(ticks "$spid")
	rc=0
	out=$(timeout "$deadline" taskset -c "$LOAD_CPU" turnutils_uclient -c -W "$secret" -u bench -e 127.0.0.1 -r "$peer_port" \
		-p "$port" -m "$1" -n "$MSGS" -l "$LEN" -z "$INTERVAL" -X 127.0.0.1 127.0.0.1 2>&1) || rc=$?
	t1=$(ticks "$spid")
	printf '%s\n' "$out" >"$work/uclient-$1.log"
	local sent recv lost
	sent=$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+' <<<"$out" | tail -1 | grep -oE '[0-9]+' | head -1 || true)
	recv=$(grep -oE 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+' <<<"$out" | tail -1 | grep -oE '[0-9]+' | tail -1 || true)
	lost=$(grep -oE 'Total lost packets [0-9]+' <<<"$out" | grep -oE '[0-9]+' || true)
	if [[ $rc == 124 ]]; then
		status="timeout(${deadline}s)"
	elif [[ $rc != 0 || -z "$lost" ]]; then
		status="failed(rc=$rc):$(tail -1 <<<"$out" | tr -s ' \t' '_')"
	fi
	echo "${sent:-0} ${recv:-0} ${lost:--1} $((t1 - t0)) $status"
}

taskset -c "$LOAD_CPU" turnutils_peer -L 127.0.0.1 -p "$peer_port" >"$work/peer.log" 2>&1 &
pids+=($!)
sleep 0.5

declare -A cpu best
echo "TURN benchmark: $(nproc) CPUs, server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; $MSGS packets x $LEN B every $INTERVAL ms per allocation; coturn $(turnserver --version 2>/dev/null | head -1); embedded UDP listeners: $LISTENERS" >&2
for srv in $SERVERS; do
	samples=()
	for r in $(seq "$REPS"); do
		start_server "$srv"
		read -r sent recv lost dt status < <(run_load "$CPU_ALLOCS")
		stop_server
		relayed=$((sent + recv))
		[[ $status == ok ]] || echo "$srv cpu run $r: client $status" >&2
		us=$(awk -v dt="$dt" -v tck="$tck" -v n="$relayed" 'BEGIN { if (n > 0) printf "%.2f", dt * 1e6 / tck / n; else print "nan" }')
		echo "$srv cpu run $r: $CPU_ALLOCS allocations, sent $sent, received $recv, lost $lost, server CPU ${dt} ticks -> $us us/packet" >&2
		samples+=("$us")
	done
	cpu[$srv]=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	best[$srv]=0
	for m in $LADDER; do
		start_server "$srv"
		read -r sent recv lost dt status < <(run_load "$m")
		stop_server
		echo "$srv load: $m allocations, sent $sent, received $recv, lost $lost, client $status" >&2
		if [[ $status == ok && "$lost" == 0 && "$sent" == "$((m * MSGS))" && "$recv" == "$sent" ]]; then
			best[$srv]=$m
		else
			break
		fi
	done
done

pps=$((1000 / INTERVAL))
echo
echo "| server | CPU us per relayed packet (median of $REPS, $CPU_ALLOCS allocations) | largest zero-loss load (allocations x pps, both directions) |"
echo "|---|---|---|"
for srv in $SERVERS; do
	if [[ -z "$LADDER" ]]; then
		echo "| $srv | ${cpu[$srv]} | (no ladder) |"
	else
		echo "| $srv | ${cpu[$srv]} | ${best[$srv]} x $pps pps = $((best[$srv] * pps * 2)) relayed packets/s |"
	fi
done
if [[ -n "${cpu[embedded]:-}" && -n "${cpu[coturn]:-}" && "${cpu[embedded]}" != nan && "${cpu[coturn]}" != nan ]]; then
	awk -v e="${cpu[embedded]}" -v c="${cpu[coturn]}" -v be="${best[embedded]}" -v bc="${best[coturn]}" -v ladder="$LADDER" \
		'BEGIN { printf "\nembedded/coturn: CPU per packet %.2fx (lower is better)", e / c
			if (ladder != "") printf ", zero-loss capacity %s", (bc > 0 ? sprintf("%.2fx (higher is better)", be / bc) : "n/a (coturn had no zero-loss step)")
			printf "\n" }'
fi
