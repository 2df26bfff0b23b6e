#!/usr/bin/env bash
# Benchmarks Ansible's execd connection plugin (clients/ansible) side by
# side with the stock ssh connection (ControlPersist, pipelining) over
# OpenSSH, and with the stock ssh connection pointed at rexec's ssh mode,
# on one playbook over HOSTS loopback hosts 127.0.0.2, 127.0.0.3, ...: one
# execd and one sshd per address. Prints Markdown table rows. Every byte
# goes to 127.0.0.0/8. Needs root for apt-get (openssh-server,
# openssh-client, ansible-core when missing) and for sshd.
#
#   bash bench/ansible.sh             # 20 hosts, median of 3 runs
#   HOSTS=10 RUNS=3 bash bench/ansible.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-20}
RUNS=${RUNS:-3}

. bench/lib.sh
if [ ! -x /usr/sbin/sshd ] || ! need ssh || ! need ansible-playbook; then
  apt_install openssh-server openssh-client ansible-core
fi
start_work execd-ansible

go build -o "$work/execd" ./cmd/execd
go build -o "$work/rexec" ./cmd/rexec
mkdir -p "$work/bin" && ln -s "$work/rexec" "$work/bin/ssh"

last=$((HOSTS + 1))
addrs() { for n in $(seq 2 "$last"); do echo "127.0.0.$n"; done; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

# --- one sshd per host, key login for the current user
SSH_PORT=$(free_port 127.0.0.2)
ssh_keys
for a in $(addrs); do start_sshd "sshd_$a" "$a:$SSH_PORT"; done

# --- one execd per host
EXECD_PORT=$(free_port 127.0.0.2)
export XDG_CONFIG_HOME="$work/client" HOME="$work/home" # execd's first start puts the user's key here
mkdir -p "$HOME"
for a in $(addrs); do
  mkdir -p "$work/served/$a"
  "$work/execd" --config /dev/null --listen "$a:$EXECD_PORT" --state-dir "$work/state/$a" --dir "$work/served/$a" --log-level warn 2>>"$work/execd.log" &
  pids+=($!)
  if [ "$a" = 127.0.0.2 ]; then # the first makes the key the others use
    for i in $(seq 50); do "$work/rexec" -p "$EXECD_PORT" 127.0.0.2 true 2>/dev/null && break; sleep 0.1; done
  fi
done

# --- inventories: the same hosts three ways
{
  echo "[lab]"
  for a in $(addrs); do echo "h$a ansible_host=$a"; done
  echo "[lab:vars]"
  echo "ansible_python_interpreter=$PY"
} >"$work/hosts"
cp "$work/hosts" "$work/ssh.ini"
cat >>"$work/ssh.ini" <<INI
ansible_port=$SSH_PORT
ansible_ssh_private_key_file=$work/ssh/user_key
ansible_ssh_common_args=-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR
INI
cp "$work/hosts" "$work/rexec.ini"
cat >>"$work/rexec.ini" <<INI
ansible_port=$EXECD_PORT
ansible_ssh_executable=$work/bin/ssh
ansible_ssh_transfer_method=piped
INI
cp "$work/hosts" "$work/execd.ini"
cat >>"$work/execd.ini" <<INI
ansible_port=$EXECD_PORT
ansible_connection=execd
INI

head -c 1M /dev/urandom >"$work/payload.bin"
cat >"$work/play.yml" <<YML
- hosts: lab
  gather_facts: false
  tasks:
    - ping:
    - command: uname -a
    - shell: echo "{{ inventory_hostname }}" | tr a-z A-Z
    - copy:
        content: "config of {{ inventory_hostname }}\n"
        dest: "{{ ansible_env.HOME | default('~') }}/app.conf"
    - copy:
        src: $work/payload.bin
        dest: "~/payload.bin"
    - fetch:
        src: "~/payload.bin"
        dest: "$work/fetched/{{ inventory_hostname }}.bin"
        flat: true
    - file:
        path: "~/payload.bin"
        state: absent
YML

# The same number of tasks with no module: the connection's own cost, as
# Ansible's raw runs a command with no Python on the other side.
cat >"$work/raw.yml" <<YML
- hosts: lab
  gather_facts: false
  tasks:
    - raw: "true"
    - raw: uname -a
    - raw: echo "{{ inventory_hostname }}" | tr a-z A-Z
    - raw: cat /etc/hostname
    - raw: ls /
    - raw: date
    - raw: "true"
YML

export ANSIBLE_CONNECTION_PLUGINS="$PWD/clients/ansible/connection_plugins" ANSIBLE_HOST_KEY_CHECKING=False \
  ANSIBLE_PIPELINING=True ANSIBLE_FORKS=$HOSTS ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP="$work/tmp" \
  ANSIBLE_SSH_CONTROL_PATH_DIR="$work/cp"

play() { # play INVENTORY PLAYBOOK: one run, quiet
  timeout -k 5 300 ansible-playbook -i "$1" "$2" >"$work/last.log" 2>&1 ||
    { echo "bench: ansible-playbook -i $1 $2 failed" >&2; tail -30 "$work/last.log" >&2; exit 1; }
}
timed() { # timed INVENTORY PLAYBOOK: median wall time in ms over RUNS runs, after a warm-up run
  local i t0 t1
  play "$1" "$2" # warm-up: ControlPersist masters up, known hosts pinned, caches warm
  for i in $(seq "$RUNS"); do
    t0=$(now_ns); play "$1" "$2"; t1=$(now_ns)
    echo "bench: $(basename "$1" .ini) $(basename "$2") run $i: $(( (t1 - t0) / 1000000 )) ms" >&2
    echo $(( (t1 - t0) / 1000000 ))
  done | median
}
row() { # row LABEL PLAYBOOK
  local ssh_ms execd_ms rexec_ms
  ssh_ms=$(timed "$work/ssh.ini" "$2")
  execd_ms=$(timed "$work/execd.ini" "$2")
  rexec_ms=$(timed "$work/rexec.ini" "$2")
  echo "| $1 | ${ssh_ms} ms | ${execd_ms} ms ($(ratio "$ssh_ms" "$execd_ms")) | ${rexec_ms} ms ($(ratio "$ssh_ms" "$rexec_ms")) |"
}
echo "| $HOSTS loopback hosts, forks $HOSTS, pipelining, median of $RUNS | stock ssh connection, OpenSSH, ControlPersist | execd connection plugin (x faster) | stock ssh connection, rexec's ssh mode (x faster) |"
echo "|---|---:|---:|---:|"
row "7 raw tasks (the connection alone)" "$work/raw.yml"
row "7 module tasks: ping, command, shell, copy content, copy 1 MiB, fetch 1 MiB, file" "$work/play.yml"
cmp "$work/payload.bin" "$work/fetched/h127.0.0.2.bin"
