#!/usr/bin/env bash
# Builds the packages and runs every sh block of docs/operate.md's "Install and
# operate" section, in order, as root on this machine: the .deb installed
# with dpkg -i, its execd started from the installed unit's ExecStart and
# used by rexec. This machine has no systemd as PID 1, so systemctl is a
# shell function here that runs that ExecStart under systemd-socket-activate
# on 127.0.0.1:7022, as execd.socket would. Then it checks what the blocks
# should have done, removes the package and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

work=$(mktemp -d)
run=$work/run
mkdir -p "$run" "$work/home"
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null || true
  dpkg --purge execd >/dev/null 2>&1 || true
  rm -rf /var/lib/execd /etc/execd /var/log/execd
  userdel execd 2>/dev/null || true
  groupdel execd 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The section's sh blocks, in order.
awk '/^## Install and operate/ {on = 1; next} on && /^## / {on = 0} on' docs/operate.md >"$work/section.md"
awk '/^```sh$/ {b = 1; next} b && /^```$/ {b = 0; next} b' "$work/section.md" >"$work/blocks.sh"
echo "== the commands of docs/operate.md, Install and operate"
cat "$work/blocks.sh"
[ "$(grep -c . "$work/blocks.sh")" -ge 15 ] || { echo "too few commands found in docs/operate.md"; exit 1; }

cat >"$work/prelude.sh" <<PRELUDE
set -euo pipefail
export HOME=$work/home
unset XDG_CONFIG_HOME XDG_STATE_HOME
start_execd() {
  local exec_start
  exec_start=\$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/execd.service)
  # shellcheck disable=SC2086 # the unit's words
  systemd-socket-activate -l 127.0.0.1:7022 \$exec_start >>$run/execd.log 2>&1 &
  echo \$! >$run/pid
  for _ in \$(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/7022) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:7022" >&2
  return 1
}
stop_execd() {
  local pid
  pid=\$(cat $run/pid)
  kill -TERM "\$pid"
  for _ in \$(seq 450); do # TimeoutStopSec=45s
    kill -0 "\$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "\$pid"
}
systemctl() {
  case "\$*" in
  "enable --now execd.socket") start_execd ;;
  "restart execd") stop_execd && start_execd ;;
  "reload execd") kill -HUP "\$(cat $run/pid)" ;;
  *) echo "systemctl \$*: not emulated on this machine" >&2; return 1 ;;
  esac
}
PRELUDE

echo "== running them"
set +e
bash -c "source '$work/prelude.sh'; set -x; source '$work/blocks.sh'" >"$work/out.txt" 2>&1
rc=$?
set -e
daemon=$(cat "$run/pid" 2>/dev/null || true)
cat "$work/out.txt"
if [ "$rc" -ne 0 ]; then
  echo "the commands of docs/operate.md failed (rc $rc); the daemon's log:"
  cat "$run/execd.log" 2>/dev/null || true
  exit 1
fi

echo "== checks"
fail() { echo "FAIL: $*"; cat "$run/execd.log"; exit 1; }
grep -qx 'execd' "$work/out.txt" || fail "rexec alice@127.0.0.1 id -un did not print execd"
grep -qx 'ready' "$work/out.txt" || fail "/readyz did not answer ready"
grep -qE '^execd_commands_exited_total\{class="success"\} [1-9]' "$work/out.txt" || fail "no command counted"
grep -qx 'after the rotation' "$work/out.txt" || fail "the command after the rotation"
grep -q '"id" "-un"' "$work/out.txt" || fail "execd audit did not read the rotated file"
grep -q '"echo" "after" "the" "rotation"' "$work/out.txt" || fail "execd audit did not read the current file"
grep -qE '^execd version [0-9]' "$work/out.txt" || fail "execd --version"
[ "$(stat -c %U /var/lib/execd/home/alice)" = execd ] || fail "alice's home belongs to the execd account"
for f in /usr/share/man/man1/execd.1.gz /usr/share/man/man1/rexec.1.gz /usr/share/bash-completion/completions/rexec \
  /usr/share/zsh/vendor-completions/_rexec /usr/share/fish/vendor_completions.d/rexec.fish /etc/logrotate.d/execd; do
  [ -s "$f" ] || fail "$f is not installed"
done
ls out/packages/execd-*.x86_64.rpm >/dev/null || fail "no .rpm"

echo "== removal keeps the state and the account"
kill -TERM "$daemon"
for _ in $(seq 450); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
daemon=""
dpkg -r execd >/dev/null
[ ! -e /usr/bin/execd ] || fail "/usr/bin/execd left after dpkg -r"
[ -s /var/lib/execd/users.toml ] || fail "the users database went with the package"
getent passwd execd >/dev/null || fail "the execd account went with the package"
echo "package: OK"
