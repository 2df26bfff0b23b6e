#!/bin/sh
# After install or upgrade: the execd account (for users without run_as),
# the state directory, and systemd told of the units. An upgrade restarts
# a running daemon onto the new binary; a first install starts nothing:
# add users first, then "systemctl enable --now execd.socket".
set -e
if ! getent group execd >/dev/null 2>&1; then
	groupadd --system execd
fi
if ! getent passwd execd >/dev/null 2>&1; then
	useradd --system --gid execd --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin --comment "execd commands" execd
fi
install -d -m 0711 /var/lib/execd
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	systemctl try-restart execd.service >/dev/null 2>&1 || true
fi
exit 0
