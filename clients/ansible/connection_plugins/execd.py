# The execd connection plugin for Ansible: tasks run through execd, built
# on the Python client (clients/python/execd_client.py).
from __future__ import annotations

DOCUMENTATION = '''
    name: execd
    short_description: run tasks through execd
    description:
        - Runs commands and moves files over execd's own protocol, with no
          shell round trips for files; put_file and fetch_file are
          verified (SHA-256) and atomic.
        - Logs in with a key (rexec's, ~/.ssh/id_ed25519, or
          ansible_private_key_file; needs the cryptography package) or a
          password; the daemon's identity is pinned on first use in rexec's
          known_hosts and a changed identity is refused.
    author: the execd project
    extends_documentation_fragment:
        - connection_pipelining
    options:
      remote_addr:
        description: Address of the daemon.
        default: inventory_hostname
        vars:
          - name: inventory_hostname
          - name: ansible_host
          - name: ansible_execd_host
      port:
        description: Port of the daemon (default the alias's in rexec's config.toml, else 7022).
        type: int
        vars:
          - name: ansible_port
          - name: ansible_execd_port
      remote_user:
        description: User to log in as (default the local user).
        vars:
          - name: ansible_user
          - name: ansible_execd_user
        env:
          - name: ANSIBLE_REMOTE_USER
        ini:
          - section: defaults
            key: remote_user
        keyword:
          - name: remote_user
      password:
        description: Password, when the daemon asks for one and no key serves.
        vars:
          - name: ansible_password
          - name: ansible_execd_password
      private_key_file:
        description: ed25519 private key (default rexec's key, else ~/.ssh/id_ed25519).
        vars:
          - name: ansible_private_key_file
          - name: ansible_execd_private_key_file
      fingerprint:
        description: The daemon's identity (SHA256:...), instead of known_hosts.
        vars:
          - name: ansible_execd_fingerprint
      known_hosts:
        description: Pinned identities (default rexec's known_hosts).
        vars:
          - name: ansible_execd_known_hosts
      strict_host_key:
        description: Refuse a daemon that is not pinned yet.
        type: bool
        default: false
        vars:
          - name: ansible_execd_strict_host_key
      timeout:
        description: Time limit for connecting and logging in, in seconds.
        type: int
        default: 10
        vars:
          - name: ansible_execd_timeout
'''

import getpass
import os
import shlex
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

try:
    import execd_client as ec
except ImportError:  # the repository's layout: clients/python beside clients/ansible
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import execd_client as ec

display = Display()


class Connection(ConnectionBase):
    """One execd connection per task, as Ansible opens connections."""

    transport = "execd"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._client = None
        self._home = None
        self._confined = False  # learnt from the first refused absolute path

    def _connect(self):
        if self._connected:
            return self
        # An alias of rexec's config.toml resolves as rexec resolves it:
        # its address, port and user, each overridden by Ansible's own.
        host, alias_port, alias_user, plaintext = ec.resolve_alias(self.get_option("remote_addr"))
        port = int(self.get_option("port") or alias_port or ec.DEFAULT_PORT)
        user = self.get_option("remote_user") or alias_user or getpass.getuser()
        key = self.get_option("private_key_file") or self._play_context.private_key_file
        known = self.get_option("known_hosts")
        try:
            self._client = ec.Client(
                host, port, user,
                password=self.get_option("password") or self._play_context.password,
                fingerprint=self.get_option("fingerprint"),
                known_hosts=ec.KnownHosts(os.path.expanduser(known)) if known else None,
                key=os.path.expanduser(key) if key else "default",
                strict=bool(self.get_option("strict_host_key")),
                plaintext=plaintext,
                timeout=float(self.get_option("timeout")))
        except Exception as e:  # every failure to connect or log in makes the host unreachable
            raise AnsibleConnectionFailure(f"execd {host}:{port}: {e}") from None
        if self._client.pinned:
            display.display(f"execd: pinned new host {host}:{port} ({self._client.fingerprint})", stderr=True)
        display.vvv(f"ESTABLISH EXECD CONNECTION FOR USER: {self._client.user}", host=host)
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {cmd}", host=self.get_option("remote_addr"))
        try:
            res = self._client.exec(shell=to_text(cmd), stdin=in_data)
        except ec.ExecFailed as e:
            return 127, b"", to_bytes(e.message)
        except ec.RemoteError as e:
            raise AnsibleError(f"execd: {e}") from None
        except OSError as e:
            raise AnsibleConnectionFailure(f"execd: {e}") from None
        return res.code, res.stdout, res.stderr

    def _transfer(self, move, path):
        """Moves a file with execd's verified transfer: by its absolute path
        (a user who acts as an account), else relative to the home when it
        lies inside (a confined user). False when neither applies."""
        if not self._confined:
            try:
                move(path)
                return True
            except ec.RemoteError as e:
                if e.code != "bad_path":
                    raise
                self._confined = True  # absolute paths refused: a confined user
        rel = self._in_home(path)
        if rel is None:
            return False
        move(rel)
        return True

    def _in_home(self, path):
        """path relative to the home when it lies inside (files there move
        as verified transfers), else None."""
        if self._home is None:
            res = self._client.exec(shell='printf %s "$HOME"')
            self._home = to_text(res.stdout)
        p = os.path.normpath(path)
        if self._home and (p == self._home or p.startswith(self._home.rstrip("/") + "/")):
            return os.path.relpath(p, self._home)
        return None

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        try:
            # A user who acts as an account reaches any path with a
            # verified transfer; a confined one only inside the home.
            if self._transfer(lambda p: self._client.put(in_path, p), out_path):
                return
            # a confined user, outside the home: one command, written beside and renamed
            with open(in_path, "rb") as f:
                res = self._client.exec(shell='cat > "$1.execd-part" && mv -f "$1.execd-part" "$1"'
                                        f" sh {shlex.quote(out_path)}", stdin=f)
            if res.code != 0:
                raise AnsibleError(f"execd: put {out_path}: {to_native(res.stderr).strip()}")
        except (ec.RemoteError, ec.IntegrityError) as e:
            raise AnsibleError(f"execd: put {out_path}: {e}") from None
        except OSError as e:
            raise AnsibleConnectionFailure(f"execd: put {out_path}: {e}") from None

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        try:
            if self._transfer(lambda p: self._client.get(p, out_path), in_path):
                return
            tmp = out_path + ".execd-part"
            with open(tmp, "wb") as f:
                res = self._client.exec(["cat", "--", in_path], stdout=f)
            if res.code != 0:
                os.unlink(tmp)
                raise AnsibleError(f"execd: fetch {in_path}: {to_native(res.stderr).strip()}")
            os.replace(tmp, out_path)
        except (ec.RemoteError, ec.IntegrityError) as e:
            raise AnsibleError(f"execd: fetch {in_path}: {e}") from None
        except OSError as e:
            raise AnsibleConnectionFailure(f"execd: fetch {in_path}: {e}") from None

    def reset(self):
        self.close()

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        self._connected = False
