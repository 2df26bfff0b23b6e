#!/bin/sh
# After removal: systemd forgets the units. The state directory (identity,
# users, audit log) and the execd account stay, as with sshd's host keys.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
