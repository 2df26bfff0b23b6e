#!/usr/bin/env bash
# Benchmarks rexec's fan-out side by side with parallel-ssh (Debian's pssh)
# over OpenSSH, in one run, on HOSTS loopback hosts 127.0.0.2, 127.0.0.3,
# ...: one execd and one sshd per address, as on a lab of machines. Prints
# Markdown table rows of ratios. Every byte goes to 127.0.0.0/8. Needs root
# for apt-get (it installs openssh-server, openssh-client and pssh when
# missing) and for sshd.
#
#   bash bench/fanout.sh             # 50 hosts, median of 7 runs
#   HOSTS=20 RUNS=3 bash bench/fanout.sh
set -euo pipefail
# Every rexec connects by itself here (bench/reuse.sh measures sharing).
export REXEC_CONTROL=no
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-50}
RUNS=${RUNS:-7}
FILE_KB=${FILE_KB:-1024}

. bench/lib.sh
if [ ! -x /usr/sbin/sshd ] || ! need ssh || ! need parallel-ssh; then
  apt_install openssh-server openssh-client pssh
fi
start_work execd-fanout

go build -o "$work/execd" ./cmd/execd
go build -o "$work/rexec" ./cmd/rexec

last=$((HOSTS + 1))
addrs() { for n in $(seq 2 "$last"); do echo "127.0.0.$n"; done; }

# --- one sshd per host, key login for the current user
SSH_PORT=$(free_port 127.0.0.2)
ssh_keys
for a in $(addrs); do start_sshd "sshd_$a" "$a:$SSH_PORT"; done
addrs | sed "s/\$/:$SSH_PORT/" >"$work/pssh_hosts"
PSSH_OPTS=(-h "$work/pssh_hosts" -O BatchMode=yes -O StrictHostKeyChecking=no -O UserKnownHostsFile=/dev/null
           -O LogLevel=ERROR -x "-i $work/ssh/user_key")

# --- one execd per host, each serving its own folder
EXECD_PORT=$(free_port 127.0.0.2)
export XDG_CONFIG_HOME="$work/client" # execd's first start puts the user's key here
for a in $(addrs); do
  mkdir -p "$work/served/$a"
  head -c "${FILE_KB}K" /dev/urandom >"$work/served/$a/data.bin"
  "$work/execd" --config /dev/null --listen "$a:$EXECD_PORT" --state-dir "$work/state/$a" --dir "$work/served/$a" --log-level warn 2>>"$work/execd.log" &
  pids+=($!)
  if [ "$a" = 127.0.0.2 ]; then # the first makes the key the others use
    for i in $(seq 50); do "$work/rexec" -p "$EXECD_PORT" 127.0.0.2 true 2>/dev/null && break; sleep 0.1; done
  fi
done
RX=("$work/rexec" -H "127.0.0.[2-$last]" -p "$EXECD_PORT")
for i in $(seq 100); do
  "${RX[@]}" --no-summary true >/dev/null 2>&1 && parallel-ssh "${PSSH_OPTS[@]}" true >/dev/null 2>&1 && break
  sleep 0.2
done
"${RX[@]}" --no-summary true >/dev/null || { echo "bench: rexec fan-out failed" >&2; exit 1; }
parallel-ssh "${PSSH_OPTS[@]}" true >/dev/null || { echo "bench: parallel-ssh failed" >&2; cat "$work/ssh/sshd.log" >&2; exit 1; }

timed() { # timed COMMAND...: median wall time in µs over RUNS runs
  local i t0 t1
  for i in $(seq "$RUNS"); do
    t0=$(now_ns); "$@" >/dev/null 2>&1 || { echo "bench: $* failed" >&2; exit 1; }; t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
check_lines() { # the command's output has one line per host
  local n; n=$("$@" 2>/dev/null | grep -c .)
  [ "$n" -ge "$HOSTS" ] || { echo "bench: $* printed $n lines for $HOSTS hosts" >&2; exit 1; }
}
check_lines "${RX[@]}" uname -n
check_lines parallel-ssh "${PSSH_OPTS[@]}" -i uname -n

run_rx=$(timed "${RX[@]}" --no-summary uname -n)
run_pssh=$(timed parallel-ssh "${PSSH_OPTS[@]}" -i uname -n)
run_rx32=$(timed "${RX[@]}" -f "$HOSTS" --no-summary uname -n)
run_pssh32=$(timed parallel-ssh "${PSSH_OPTS[@]}" -p "$HOSTS" -i uname -n)

# fetch data.bin from every host into one folder per host
rx_get() { rm -rf "$work/dl"; "$work/rexec" get -q -H "127.0.0.[2-$last]" -p "$EXECD_PORT" --no-summary :data.bin "$work/dl"; }
# parallel-slurp fetches the same path from each host; on this one machine
# every sshd serves the same file system, so it fetches one host's file.
ps_get() { rm -rf "$work/dl"; mkdir -p "$work/dl"; parallel-slurp "${PSSH_OPTS[@]}" -L "$work/dl" "$work/served/127.0.0.2/data.bin" data.bin; }
rx_get >/dev/null 2>&1
for a in $(addrs); do cmp -s "$work/served/$a/data.bin" "$work/dl/$a/data.bin" || { echo "bench: rexec get -H: $a differs" >&2; exit 1; }; done
ps_get >/dev/null 2>&1
[ "$(ls "$work/dl" | wc -l)" -eq "$HOSTS" ] || { echo "bench: parallel-slurp fetched from $(ls "$work/dl" | wc -l) hosts" >&2; exit 1; }
get_rx_us=$(timed rx_get)
get_ps_us=$(timed ps_get)

# push one file to every host
head -c "${FILE_KB}K" /dev/urandom >"$work/push.bin"
rx_put() { "$work/rexec" put -q -H "127.0.0.[2-$last]" -p "$EXECD_PORT" --no-summary "$work/push.bin" :pushed.bin; }
# every sshd writes the same path here, one file system for all "hosts"
ps_put() { parallel-scp "${PSSH_OPTS[@]}" "$work/push.bin" "$work/pushed-scp.bin"; }
rx_put >/dev/null 2>&1
for a in $(addrs); do cmp -s "$work/push.bin" "$work/served/$a/pushed.bin" || { echo "bench: rexec put -H: $a differs" >&2; exit 1; }; done
ps_put >/dev/null 2>&1
cmp -s "$work/push.bin" "$work/pushed-scp.bin" || { echo "bench: parallel-scp: wrong copy" >&2; exit 1; }
put_rx_us=$(timed rx_put)
put_ps_us=$(timed ps_put)

ms() { awk -v us="$1" 'BEGIN { printf "%.0f ms", us / 1000 }'; }
echo
echo "Fan-out, measured $(date -u +%Y-%m-%d) on $(nproc) cores with $HOSTS execd and $HOSTS sshd on 127.0.0.2-127.0.0.$last, $(ssh -V 2>&1 | cut -d, -f1), $(parallel-ssh --version 2>&1 | head -1 | sed 's/^/parallel-ssh /')"
echo
echo "| measure | rexec | anchor | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| \`uname -n\` on $HOSTS hosts, default parallelism (32 for both; median of $RUNS) | $(ms "$run_rx") | parallel-ssh: $(ms "$run_pssh") | $(ratio "$run_pssh" "$run_rx") faster | >= 10x |"
echo "| same, all $HOSTS at once (\`-f $HOSTS\` / \`-p $HOSTS\`) | $(ms "$run_rx32") | parallel-ssh: $(ms "$run_pssh32") | $(ratio "$run_pssh32" "$run_rx32") faster | |"
echo "| get a ${FILE_KB} KiB file from $HOSTS hosts into per-host folders, BLAKE3-verified | $(ms "$get_rx_us") | parallel-slurp: $(ms "$get_ps_us") | $(ratio "$get_ps_us" "$get_rx_us") faster | |"
echo "| put a ${FILE_KB} KiB file to $HOSTS hosts, BLAKE3-verified | $(ms "$put_rx_us") | parallel-scp: $(ms "$put_ps_us") | $(ratio "$put_ps_us" "$put_rx_us") faster | |"
