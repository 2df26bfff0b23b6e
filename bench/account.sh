#!/usr/bin/env bash
# What acting as an account costs: the same transfers by a user who acts
# as root (the daemon's own identity: nothing switched) and by one who
# acts as another account (every file call on a thread with its fsuid,
# fsgid and groups), alternating, A B A B, so that the machine's noise
# falls on both. As root (it makes a throwaway account); every byte goes
# to loopback.
#
#   bash bench/account.sh
#   RUNS=11 FILES=2000 bash bench/account.sh
set -euo pipefail
export REXEC_CONTROL=no
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
FILES=${FILES:-1000}
[ "$(id -u)" = 0 ] || { echo "bench/account.sh runs as root (it makes an account)"; exit 2; }

. bench/lib.sh
start_work execd-account
chmod 711 "$work"
acct=benchacct$$
useradd -M -d "$work/home" -s /bin/sh "$acct"
trap 'userdel "$acct" 2>/dev/null || true; cleanup' EXIT
go build -o "$work/bin/" ./cmd/execd ./cmd/rexec
export XDG_CONFIG_HOME="$work/client" HOME="$work/client"
mkdir -p "$work/home" "$work/tree" "$work/dl"
chown "$acct" "$work/home"
for i in $(seq "$FILES"); do echo "line $i" >"$work/tree/f$i"; done
head -c $((256 << 20)) /dev/urandom >"$work/big.bin"
chmod -R a+rX "$work/tree" "$work/big.bin"
"$work/bin/rexec" keygen -f "$work/key" -C bench >/dev/null
execd_=("$work/bin/execd" --state-dir "$work/state" --config /dev/null)
"${execd_[@]}" user add self --no-password --add-key "@$work/key.pub" --run-as root --home "$work/home" >/dev/null
"${execd_[@]}" user add "$acct" --no-password --add-key "@$work/key.pub" >/dev/null
port=$(free_port)
"${execd_[@]}" --listen "127.0.0.1:$port" --log-level warn 2>"$work/execd.log" &
pids+=($!)
for _ in $(seq 50); do "$work/bin/rexec" -i "$work/key" -l self "127.0.0.1:$port" true 2>/dev/null && break; sleep 0.1; done

# trial USER WHAT: seconds for one transfer.
trial() {
  rm -rf "$work/dl" && mkdir "$work/dl"
  local t0 t1
  t0=$(now_ns)
  case $2 in
  tree) "$work/bin/rexec" get -q -r -i "$work/key" -l "$1" -p "$port" "127.0.0.1:$work/tree" "$work/dl/" ;;
  big) "$work/bin/rexec" get -q -i "$work/key" -l "$1" -p "$port" "127.0.0.1:$work/big.bin" "$work/dl/" ;;
  esac
  t1=$(now_ns)
  echo "$(((t1 - t0) / 1000000))"
}
echo "Measured $(date -u +%F) on $(nproc) cores, $(uname -r); $RUNS alternating runs each"
for what in tree big; do
  a=() b=()
  for _ in $(seq "$RUNS"); do
    a+=("$(trial self "$what")")
    b+=("$(trial "$acct" "$what")")
  done
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  case $what in
  tree) label="get -r of $FILES small files" ;;
  big) label="get of 256 MiB" ;;
  esac
  echo "| $label | as root (no switch): $ma ms | as $acct (fsuid): $mb ms | $(ratio "$mb" "$ma") the time |"
done
