# shellcheck shell=bash
# Helpers shared by bench.sh and fanout.sh; sourced, not run.

need() { command -v "$1" >/dev/null 2>&1; }

# apt_install PACKAGE...: Debian packages, quietly.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "$@" >/dev/null
}

# start_work NAME: a scratch directory in $work, removed at exit with every
# process whose pid is in $pids.
start_work() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap cleanup EXIT
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# free_port [ADDR]: a TCP port free on ADDR (default 127.0.0.1).
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "${1:-127.0.0.1}"; }
now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }

# ssh_keys: a host key and a user key in $work/ssh, the user's authorized.
ssh_keys() {
  mkdir -p /run/sshd "$work/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user_key"
  cp "$work/ssh/user_key.pub" "$work/ssh/authorized_keys"
}

# start_sshd NAME ADDR:PORT: an sshd for key logins of the current user,
# its config and pid file named after NAME.
start_sshd() {
  cat >"$work/ssh/$1.conf" <<CFG
ListenAddress $2
HostKey $work/ssh/host_key
AuthorizedKeysFile $work/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 200
PidFile $work/ssh/$1.pid
Subsystem sftp internal-sftp
CFG
  /usr/sbin/sshd -f "$work/ssh/$1.conf" -D -e 2>>"$work/ssh/sshd.log" &
  pids+=($!)
}
