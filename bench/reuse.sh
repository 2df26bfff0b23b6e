#!/usr/bin/env bash
# Connection reuse, side by side: a script of N sequential `HOST true`
# commands with rexec's shared connection (its control master), with
# every rexec connecting directly (REXEC_CONTROL=no), with ssh's
# ControlMaster/ControlPersist and with plain ssh, all against daemons on
# 127.0.0.1. Then the same rexec script with its master killed (-9) every
# 50 commands: every command must still succeed. Prints a Markdown table.
#
#   bash bench/reuse.sh            # N=500
#   N=100 bash bench/reuse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}

. bench/lib.sh
if ! need sshd && [ ! -x /usr/sbin/sshd ] || ! need ssh; then
  apt_install openssh-server openssh-client
fi
start_work execd-reuse

go build -o "$work/execd" ./cmd/execd
go build -o "$work/rexec" ./cmd/rexec

SSH_PORT=$(free_port)
ssh_keys
start_sshd sshd "127.0.0.1:$SSH_PORT"
SSH=(ssh -p "$SSH_PORT" -i "$work/ssh/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
SSH_MUX=("${SSH[@]}" -o ControlMaster=auto -o "ControlPath=$work/ssh/cm-%C" -o ControlPersist=60)

EXECD_PORT=$(free_port)
mkdir -p "$work/served" "$work/run"
chmod 700 "$work/run"
export XDG_CONFIG_HOME="$work/client" XDG_RUNTIME_DIR="$work/run"
"$work/execd" --config /dev/null --listen "127.0.0.1:$EXECD_PORT" --state-dir "$work/execd-state" --dir "$work/served" --log-level warn 2>"$work/execd.log" &
pids+=($!)
HOST="127.0.0.1:$EXECD_PORT"
for i in $(seq 50); do
  "${SSH[@]}" 127.0.0.1 true 2>/dev/null && REXEC_CONTROL=no "$work/rexec" "$HOST" true 2>/dev/null && break
  sleep 0.1
done

# series CMD...: runs CMD N times in a row, one line per run with its
# wall time in microseconds; the script stops at the first failure.
# (bash's clock, not date's: a process started to read the time would
# count in every figure)
series() {
  local i t0 t1
  for i in $(seq "$N"); do
    t0=${EPOCHREALTIME/./}; "$@" >/dev/null; t1=${EPOCHREALTIME/./}
    echo $(( t1 - t0 ))
  done
}
p50() { median; }
p90() { sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.9)]}'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
floor=$(series /bin/true | median) # what starting any process costs here

"$work/rexec" "$HOST" true # the master starts here
series "$work/rexec" "$HOST" true >"$work/shared"
master=$("$work/rexec" --control check "$HOST" | sed 's/.*pid \([0-9]*\).*/\1/')
pids+=("$master")
REXEC_CONTROL=no series "$work/rexec" "$HOST" true >"$work/direct"
"${SSH_MUX[@]}" 127.0.0.1 true
series "${SSH_MUX[@]}" 127.0.0.1 true >"$work/sshmux"
series "${SSH[@]}" 127.0.0.1 true >"$work/plainssh"
"${SSH_MUX[@]}" -O exit 127.0.0.1 2>/dev/null || true

# The master killed every 50 commands, in the middle of the script.
fails=0 kills=0
for i in $(seq "$N"); do
  if [ $((i % 50)) = 25 ]; then
    m=$("$work/rexec" --control check "$HOST" 2>/dev/null | sed 's/.*pid \([0-9]*\).*/\1/') || m=
    if [ -n "$m" ]; then kill -9 "$m"; kills=$((kills + 1)); fi
  fi
  "$work/rexec" "$HOST" true || fails=$((fails + 1))
done
m=$("$work/rexec" --control check "$HOST" 2>/dev/null | sed 's/.*pid \([0-9]*\).*/\1/') || m=
[ -z "$m" ] || pids+=("$m")
"$work/rexec" --control exit "$HOST" >/dev/null 2>&1 || true

sh50=$(p50 <"$work/shared") sh90=$(p90 <"$work/shared")
di50=$(p50 <"$work/direct") mux50=$(p50 <"$work/sshmux") ssh50=$(p50 <"$work/plainssh")
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -sr), $(go version | awk '{print $3}'), $(ssh -V 2>&1 | cut -d, -f1); $N sequential commands each"
echo
echo "| measure | rexec | anchor | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| \`rexec HOST true\`, shared connection, per command (p50; p90) | $(ms "$sh50"); $(ms "$sh90") | ssh ControlMaster: $(ms "$mux50") | $(ratio "$mux50" "$sh50") faster | <= 3 ms, >= 10x |"
echo "| same, every rexec connecting (REXEC_CONTROL=no) | $(ms "$di50") | plain ssh: $(ms "$ssh50") | $(ratio "$ssh50" "$di50") faster | |"
echo "| what sharing saves rexec | $(ms "$sh50") | $(ms "$di50") unshared | $(ratio "$di50" "$sh50") faster | |"
echo "| starting a process that does nothing (/bin/true), for scale | $(ms "$floor") | | | |"
echo "| master killed (-9) $kills times during $N commands | $fails failed | | | 0 |"
