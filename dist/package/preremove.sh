#!/bin/sh
# Before removal (not before an upgrade): stop the daemon and its socket.
# Debian passes "remove" or "upgrade"; RPM passes how many copies remain.
set -e
case "$1" in
upgrade | 1) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now execd.socket execd.service >/dev/null 2>&1 || true
fi
exit 0
