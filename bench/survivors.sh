#!/usr/bin/env bash
# What survives a pty session whose client is killed (kill -9), with sshd
# and with execd, side by side on loopback. The remote script starts, under
# bash's job control, a background job, a nohup'd one, a disowned one and
# one that leaves the session with setsid; then the client is killed and,
# after the daemons' grace (execd: --resume-grace 1s, for a client that
# might have come back, then --kill-grace 1s), each process is checked. Prints a Markdown
# table. Needs root for apt-get (openssh-server, openssh-client).
#
#   bash bench/survivors.sh
set -euo pipefail
# Every rexec connects by itself here (bench/reuse.sh measures sharing).
export REXEC_CONTROL=no
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ ! -x /usr/sbin/sshd ] || ! need ssh; then
  apt_install openssh-server openssh-client
fi
start_work execd-survivors
go build -o "$work/execd" ./cmd/execd
go build -o "$work/rexec" ./cmd/rexec

SSH_PORT=$(free_port)
ssh_keys
start_sshd sshd "127.0.0.1:$SSH_PORT"
export XDG_CONFIG_HOME="$work/client"
mkdir -p "$work/served"
# start_execd NAME FLAGS...: a daemon of its own for one row; sets
# EXECD_PORT and EXECD_PID.
start_execd() {
  local name=$1; shift
  EXECD_PORT=$(free_port)
  "$work/execd" --listen "127.0.0.1:$EXECD_PORT" --state-dir "$work/execd-state" --dir "$work/served" \
    --config /dev/null --kill-grace 1s --resume-grace 1s --log-level warn "$@" 2>"$work/execd-$name.log" &
  EXECD_PID=$!
  pids+=("$EXECD_PID")
  for i in $(seq 50); do
    "$work/rexec" "127.0.0.1:$EXECD_PORT" true 2>/dev/null && break
    sleep 0.1
  done
}

SSH=(ssh -tt -p "$SSH_PORT" -i "$work/ssh/user_key" -o BatchMode=yes -o StrictHostKeyChecking=no
     -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1)
for i in $(seq 50); do
  "${SSH[@]}" true >/dev/null 2>&1 && break
  sleep 0.1
done

# shellcheck disable=SC2016 # expanded by the remote bash
script='set -m
sleep 1001 & echo "job& $!"
nohup sleep 1002 >/dev/null 2>&1 & echo "nohup $!"
sleep 1003 & disown; echo "disown $!"
setsid bash -c '\''echo "setsid $$"; exec sleep 1004'\'' &
echo "shell $$"
sleep 1005'
kinds=("shell" "job&" "nohup" "disown" "setsid")

# survivors NAME VICTIM CLIENT...: run the script, kill -9 the client (or
# the daemon, VICTIM a pid) once every pid is known, wait past the grace,
# print alive/ended per kind.
survivors() {
  local name=$1 victim=$2 out="$work/$1.out"; shift 2
  "$@" bash -c "$script" </dev/null >"$out" 2>&1 &
  local client=$!
  for i in $(seq 100); do
    [ "$(grep -cE '^(shell|job&|nohup|disown|setsid) [0-9]+' "$out" | tr -d '\r')" -ge 5 ] && break
    sleep 0.1
  done
  [ "$victim" = client ] && victim=$client
  kill -9 "$victim"; wait "$victim" 2>/dev/null || true
  sleep 3
  local row="| $name |"
  for k in "${kinds[@]}"; do
    local pid
    pid=$(tr -d '\r' <"$out" | awk -v k="$k" '$1 == k {print $2}')
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; then
      row+=" survives |"
      kill -9 "$pid" 2>/dev/null || true # started by this script
    else
      row+=" ended |"
    fi
  done
  kill -9 "$client" 2>/dev/null || true
  echo "$row"
}

echo "| pty session | shell | job & | nohup job & | job & disown | setsid job |"
echo "|---|---|---|---|---|---|"
survivors "OpenSSH sshd, client killed" client "${SSH[@]}"
start_execd cg
survivors "execd, client killed" client "$work/rexec" -t "127.0.0.1:$EXECD_PORT" --
survivors "execd, daemon killed" "$EXECD_PID" "$work/rexec" -t "127.0.0.1:$EXECD_PORT" --
start_execd nocg --cgroup off
survivors "execd --cgroup off, client killed" client "$work/rexec" -t "127.0.0.1:$EXECD_PORT" --
survivors "execd --cgroup off, daemon killed" "$EXECD_PID" "$work/rexec" -t "127.0.0.1:$EXECD_PORT" --
grep -h "commands kept" "$work"/execd-*.log | sed 's/^/# /' || true
