#!/usr/bin/env bash
# Benchmarks rexec/execd side by side with OpenSSH (sshd on a loopback port)
# and nc, in one run on one machine, and prints a Markdown table of ratios.
# Every byte goes to loopback (127.0.0.1; the fan-out table, run by
# bench/fanout.sh at the end, uses 127.0.0.2-51). Needs root for apt-get (it installs
# openssh-server, openssh-client and netcat-openbsd when missing).
#
#   bash bench/bench.sh            # full run, 1 GiB transfers
#   SIZE_MB=256 RUNS=20 bash bench/bench.sh
#   FANOUT=0 bash bench/bench.sh   # without the fan-out table (bench/fanout.sh)
#   REUSE=0 bash bench/bench.sh    # without the shared-connection table (bench/reuse.sh)
set -euo pipefail
# Every rexec connects by itself here (bench/reuse.sh measures sharing).
export REXEC_CONTROL=no
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-30}
TRIALS=${TRIALS:-3}

. bench/lib.sh
if ! need sshd && [ ! -x /usr/sbin/sshd ] || ! need ssh || ! need nc; then
  apt_install openssh-server openssh-client netcat-openbsd
fi
start_work execd-bench

go build -o "$work/execd" ./cmd/execd
go build -o "$work/rexec" ./cmd/rexec
go build -o "$work/rtt" ./bench/rtt

# --- sshd on loopback, key login for the current user
SSH_PORT=$(free_port)
ssh_keys
start_sshd sshd "127.0.0.1:$SSH_PORT"
SSH=(ssh -p "$SSH_PORT" -i "$work/ssh/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1)

# --- execd on loopback
EXECD_PORT=$(free_port)
mkdir -p "$work/served" "$work/dl"
# The client's config directory first: execd's first start puts the
# user's key there, and rexec logs in with it.
export XDG_CONFIG_HOME="$work/client"
"$work/execd" --config /dev/null --listen "127.0.0.1:$EXECD_PORT" --state-dir "$work/execd-state" --dir "$work/served" --log-level warn 2>"$work/execd.log" &
EXECD_PID=$!
pids+=($EXECD_PID)
REXEC=("$work/rexec" "127.0.0.1:$EXECD_PORT")

for i in $(seq 50); do
  "${SSH[@]}" true 2>/dev/null && "${REXEC[@]}" true 2>/dev/null && break
  sleep 0.1
done

# --- one-shot latency, whole client process
lat() {
  local i t0 t1
  for i in $(seq "$RUNS"); do
    t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
ssh_lat=$(lat "${SSH[@]}" true)
rexec_lat=$(lat "${REXEC[@]}" true)

# --- stdout throughput of `cat FILE`
file="$work/data.bin"
head -c "$((SIZE_MB << 20))" /dev/urandom >"$file"
cat "$file" >/dev/null # warm the page cache
tput_of() {
  local i t0 t1
  for i in $(seq "$TRIALS"); do
    t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
NC_PORT=$(free_port)
nc_tput() {
  local i t0 t1 srv
  for i in $(seq "$TRIALS"); do
    nc -N -l 127.0.0.1 "$NC_PORT" <"$file" &
    srv=$!
    sleep 0.2
    t0=$(now_ns); nc 127.0.0.1 "$NC_PORT" >/dev/null; t1=$(now_ns)
    wait "$srv" 2>/dev/null || true
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
ssh_t=$(tput_of "${SSH[@]}" cat "$file")
rexec_t=$(tput_of "${REXEC[@]}" cat "$file")
nc_t=$(nc_tput)

# --- round trip of `true` on one open connection (library)
read -r rtt_p50 rtt_p90 < <("$work/rtt" -addr "127.0.0.1:$EXECD_PORT" -n 300 -known-hosts "$XDG_CONFIG_HOME/rexec/known_hosts")

# --- daemon peak RSS while streaming the file, on a fresh daemon
kill "$EXECD_PID"; wait "$EXECD_PID" 2>/dev/null || true
"$work/execd" --config /dev/null --listen "127.0.0.1:$EXECD_PORT" --state-dir "$work/execd-state" --dir "$work/served" --log-level warn 2>>"$work/execd.log" &
EXECD_PID=$!
pids+=($EXECD_PID)
for i in $(seq 50); do "${REXEC[@]}" true 2>/dev/null && break; sleep 0.1; done
"${REXEC[@]}" cat "$file" >/dev/null
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$EXECD_PID/status")

# --- file transfer of the same file, verified end to end by rexec; each
# tool writes a fresh copy (the previous one removed outside the timing)
RX=("$work/rexec")
RXH="127.0.0.1"
SCP=(scp -q -P "$SSH_PORT" -i "$work/ssh/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
SFTP=(sftp -q -P "$SSH_PORT" -i "$work/ssh/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
      -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -b -)
cp "$file" "$work/served/data.bin"
xfer() { # xfer DEST_TO_REMOVE COMMAND...: median time of a copy
  local dest=$1 i t0 t1; shift
  for i in $(seq "$TRIALS"); do
    rm -f "$dest"; sync
    t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
    cmp -s "$dest" "$file" || { echo "bench: $* produced a wrong copy" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
rx_get() { "${RX[@]}" get -q -p "$EXECD_PORT" "$RXH:data.bin" "$work/dl/rx.bin"; }
rx_put() { "${RX[@]}" put -q -p "$EXECD_PORT" "$file" "$RXH:up.bin"; }
rx_get_sha() { "${RX[@]}" get -q --hash sha256 -p "$EXECD_PORT" "$RXH:data.bin" "$work/dl/rx.bin"; }
rx_put_sha() { "${RX[@]}" put -q --hash sha256 -p "$EXECD_PORT" "$file" "$RXH:up.bin"; }
sftp_get() { echo "get $work/served/data.bin $work/dl/sftp.bin" | "${SFTP[@]}" 127.0.0.1; }
sftp_put() { echo "put $file $work/served/sftp-up.bin" | "${SFTP[@]}" 127.0.0.1; }
nc_put() {
  nc -l 127.0.0.1 "$NC_PORT" >"$work/served/nc.bin" &
  local srv=$!
  sleep 0.2
  nc -N 127.0.0.1 "$NC_PORT" <"$file"
  wait "$srv"
}
get_rx=$(xfer "$work/dl/rx.bin" rx_get)
get_scp=$(xfer "$work/dl/scp.bin" "${SCP[@]}" "127.0.0.1:$work/served/data.bin" "$work/dl/scp.bin")
get_sftp=$(xfer "$work/dl/sftp.bin" sftp_get)
put_rx=$(xfer "$work/served/up.bin" rx_put)
put_scp=$(xfer "$work/served/scp-up.bin" "${SCP[@]}" "$file" "127.0.0.1:$work/served/scp-up.bin")
put_sftp=$(xfer "$work/served/sftp-up.bin" sftp_put)
put_nc=$(xfer "$work/served/nc.bin" nc_put)
get_rx_sha=$(xfer "$work/dl/rx.bin" rx_get_sha)
put_rx_sha=$(xfer "$work/served/up.bin" rx_put_sha)

# --- daemon peak RSS during a get and a put, on a fresh daemon
kill "$EXECD_PID"; wait "$EXECD_PID" 2>/dev/null || true
"$work/execd" --config /dev/null --listen "127.0.0.1:$EXECD_PORT" --state-dir "$work/execd-state" --dir "$work/served" --log-level warn 2>>"$work/execd.log" &
EXECD_PID=$!
pids+=($EXECD_PID)
for i in $(seq 50); do "${REXEC[@]}" true 2>/dev/null && break; sleep 0.1; done
rm -f "$work/dl/rx.bin" "$work/served/up.bin"
rx_get; rx_put
xfer_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$EXECD_PID/status")

mbps() { awk -v us="$1" -v mb="$SIZE_MB" 'BEGIN { printf "%.0f", mb / (us / 1e6) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f ms", us / 1000 }'; }

echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | awk '{print $3}'), $(ssh -V 2>&1 | cut -d, -f1)"
echo
echo "| measure | rexec/execd | anchor | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| one-shot latency, \`rexec HOST true\` vs \`ssh HOST true\` (median of $RUNS) | $(ms "$rexec_lat") | ssh: $(ms "$ssh_lat") | $(ratio "$ssh_lat" "$rexec_lat") faster | >= 10x |"
echo "| stdout throughput, \`cat\` of ${SIZE_MB} MiB to /dev/null (median of $TRIALS) | $(mbps "$rexec_t") MiB/s | ssh: $(mbps "$ssh_t") MiB/s | $(ratio "$ssh_t" "$rexec_t") of ssh | >= 2x |"
echo "| same, against raw nc over loopback | $(mbps "$rexec_t") MiB/s | nc: $(mbps "$nc_t") MiB/s | $(ratio "$nc_t" "$rexec_t") of nc | >= 0.5x |"
echo "| round trip of \`true\` on one open connection (library, 300 runs) | p50 ${rtt_p50} ms, p90 ${rtt_p90} ms | | | p50 <= 2 ms |"
echo "| daemon peak RSS (VmHWM) while streaming ${SIZE_MB} MiB | $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f MiB", k/1024 }') | | | <= 32 MiB |"
echo "| \`rexec get\` of ${SIZE_MB} MiB, BLAKE3-verified, vs scp (median of $TRIALS) | $(mbps "$get_rx") MiB/s | scp: $(mbps "$get_scp") MiB/s | $(ratio "$get_scp" "$get_rx") of scp | >= 2x |"
echo "| same, vs sftp | $(mbps "$get_rx") MiB/s | sftp: $(mbps "$get_sftp") MiB/s | $(ratio "$get_sftp" "$get_rx") of sftp | >= 2x |"
echo "| \`rexec put\` of ${SIZE_MB} MiB, BLAKE3-verified, vs scp | $(mbps "$put_rx") MiB/s | scp: $(mbps "$put_scp") MiB/s | $(ratio "$put_scp" "$put_rx") of scp | >= 2x |"
echo "| same, vs sftp | $(mbps "$put_rx") MiB/s | sftp: $(mbps "$put_sftp") MiB/s | $(ratio "$put_sftp" "$put_rx") of sftp | >= 2x |"
echo "| \`rexec get --hash sha256\` (SHA-256-verified) vs scp | $(mbps "$get_rx_sha") MiB/s | scp: $(mbps "$get_scp") MiB/s | $(ratio "$get_scp" "$get_rx_sha") of scp | |"
echo "| \`rexec put --hash sha256\` (SHA-256-verified) vs scp | $(mbps "$put_rx_sha") MiB/s | scp: $(mbps "$put_scp") MiB/s | $(ratio "$put_scp" "$put_rx_sha") of scp | |"
echo "| \`rexec put\` vs raw nc into a file (no encryption, no check) | $(mbps "$put_rx") MiB/s | nc: $(mbps "$put_nc") MiB/s | $(ratio "$put_nc" "$put_rx") of nc | >= 0.5x |"
echo "| daemon peak RSS (VmHWM) during a get and a put of ${SIZE_MB} MiB | $(awk -v k="$xfer_rss_kb" 'BEGIN { printf "%.1f MiB", k/1024 }') | | | <= 32 MiB |"

# --- fan-out against parallel-ssh, on many loopback hosts (its own table)
[ "${FANOUT:-1}" = 0 ] || bash bench/fanout.sh

# --- shared connections against ssh's ControlMaster (its own table)
[ "${REUSE:-1}" = 0 ] || env -u REXEC_CONTROL bash bench/reuse.sh
