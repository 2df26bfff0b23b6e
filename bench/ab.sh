#!/usr/bin/env bash
# A/B of two builds on one machine, alternating, so that the machine's
# noise falls on both alike: one-shot latency of every client against
# every daemon, get of a 1 GiB file with SHA-256 and BLAKE3, and stdout
# of cat of it with the daemons' peak memory. Every
# byte goes to loopback (127.0.0.1).
#
#   bash bench/ab.sh REV            # REV (e.g. a commit) against the work tree
#   RUNS=150 GETS=5 bash bench/ab.sh f99e742
set -euo pipefail
# Every rexec connects by itself here (bench/reuse.sh measures sharing).
export REXEC_CONTROL=no
cd "$(dirname "$0")/.."
REV=${1:?usage: bench/ab.sh REV}
RUNS=${RUNS:-100}
GETS=${GETS:-5}

. bench/lib.sh
start_work execd-ab
git worktree add -q --detach "$work/src-old" "$REV"
pids_cleanup_tree() { git worktree remove --force "$work/src-old" 2>/dev/null || true; }
trap 'pids_cleanup_tree; cleanup' EXIT
for b in old new; do
  src=.
  [ "$b" = old ] && src="$work/src-old"
  (cd "$src" && go build -o "$work/bin-$b/" ./cmd/execd ./cmd/rexec)
done

export XDG_CONFIG_HOME="$work/client"
mkdir -p "$work/served" "$work/dl"
head -c $((1024 << 20)) /dev/urandom > "$work/served/big.bin"
declare -A port
for b in old new; do
  port[$b]=$(free_port)
  "$work/bin-$b/execd" --listen "127.0.0.1:${port[$b]}" --state-dir "$work/state-$b" --dir "$work/served" --log-level warn 2>"$work/$b.log" &
  pids+=($!)
  # The first daemon's first start makes the user's key; the second's
  # adds the same key.
  for _ in $(seq 50); do "$work/bin-$b/rexec" "127.0.0.1:${port[$b]}" true 2>/dev/null && break; sleep 0.1; done
done

echo "one-shot latency, median of $RUNS (client-daemon):"
for _ in $(seq "$RUNS"); do
  for c in old new; do
    for d in old new; do
      s=$(now_ns)
      "$work/bin-$c/rexec" "127.0.0.1:${port[$d]}" true
      echo "$c-$d $(( ($(now_ns) - s) / 1000 ))" >> "$work/lat"
    done
  done
done
for k in old-old new-old old-new new-new; do
  printf '  %s %s ms\n' "$k" "$(awk -v k="$k" '$1 == k {print $2}' "$work/lat" | median | awk '{printf "%.2f", $1 / 1000}')"
done

echo "get of 1 GiB, MiB/s, median of $GETS (build with its own daemon):"
cat "$work/served/big.bin" > /dev/null
for h in sha256 blake3; do
  for _ in $(seq "$GETS"); do
    for b in old new; do
      rm -f "$work/dl/big.bin"
      sync
      s=$(now_ns)
      "$work/bin-$b/rexec" get -q --hash "$h" "127.0.0.1:${port[$b]}:big.bin" "$work/dl/big.bin"
      ns=$(( $(now_ns) - s ))
      cmp -s "$work/dl/big.bin" "$work/served/big.bin" || { echo "$b: copy differs" >&2; exit 1; }
      echo "$h-$b $(( 1024 * 1000000000 / ns ))" >> "$work/get"
    done
  done
  for b in old new; do
    printf '  %s %s: %s\n' "$h" "$b" "$(awk -v k="$h-$b" '$1 == k {print $2}' "$work/get" | median)"
  done
done

echo "stdout of cat of 1 GiB to /dev/null, MiB/s, median of $GETS (build with its own daemon; the daemon's peak RSS after):"
for _ in $(seq "$GETS"); do
  for b in old new; do
    s=$(now_ns)
    "$work/bin-$b/rexec" "127.0.0.1:${port[$b]}" cat big.bin > /dev/null
    echo "cat-$b $(( 1024 * 1000000000 / ($(now_ns) - s) ))" >> "$work/cat"
  done
done
i=0
for b in old new; do
  pid=${pids[$i]}
  i=$((i + 1))
  printf '  %s: %s MiB/s, daemon VmHWM %s\n' "$b" "$(awk -v k="cat-$b" '$1 == k {print $2}' "$work/cat" | median)" "$(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
done
