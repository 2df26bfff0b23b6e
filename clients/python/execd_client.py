#!/usr/bin/env python3
"""A reference client for execd's wire protocol, in Python's standard library.

It speaks the real protocol (frame/SPEC.md): TLS 1.3, hello, password login,
running a command (exec) and fetching a file (get, verified with SHA-256),
with the same 12-byte header every frame starts with:

    version u8 | type u8 | flags u8 | reserved u8 | channel u32 | length u32

    struct.pack(">BBBBII", 1, TYPE, FLAGS, 0, CHANNEL, len(payload)) + payload

It is written to be read: one function per step, no third-party package,
so that students can compare it with their own struct code.

    python3 execd_client.py --user alice HOST[:PORT] run -- uname -a
    python3 execd_client.py --user alice HOST get logs/app.log app.log

The password comes from $REXEC_PASSWORD or is asked for on the terminal.
The daemon's identity is pinned on first use in rexec's known_hosts file
($XDG_CONFIG_HOME/rexec/known_hosts, one "host:port SHA256:..." line per
daemon), shared with rexec; a changed identity is refused. --fingerprint
gives the expected identity instead.
"""

import argparse
import base64
import getpass
import hashlib
import io
import json
import os
import socket
import ssl
import struct
import sys
import tempfile

VERSION = 1
HEADER = struct.Struct(">BBBBII")  # 12 bytes, big-endian
HEADER_SIZE = HEADER.size
FLAG_EOF = 0x01
DEFAULT_PORT = 7022
MAX_PAYLOAD = 256 << 10  # what this client accepts (the daemon's default too)
WINDOW = 1 << 20  # credit given to the daemon per output stream

# Frame types (frame/SPEC.md, "Types").
TYPES = {
    "hello": 0x01, "ping": 0x02, "pong": 0x03, "goaway": 0x04, "error": 0x05,
    "auth": 0x06, "auth_reply": 0x07,
    "open": 0x10, "open_ok": 0x11, "close": 0x12,
    "stdin": 0x20, "stdout": 0x21, "stderr": 0x22, "data": 0x23,
    "window": 0x30, "signal": 0x31, "resize": 0x32, "exit": 0x33, "done": 0x34,
    "request": 0x40, "reply": 0x41,
}
NAMES = {v: k for k, v in TYPES.items()}
DATA_TYPES = {TYPES["stdin"], TYPES["stdout"], TYPES["stderr"], TYPES["data"]}


class ProtocolError(Exception):
    """The daemon sent something this client cannot accept."""


class HostKeyError(Exception):
    """The daemon's identity is not the pinned or expected one."""


class RemoteError(Exception):
    """An error frame from the daemon: a code and a message."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# --- frames ---------------------------------------------------------------

def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ProtocolError(f"key {k!r} appears twice in a control payload")
    return dict(pairs)


def loads(payload):
    """Decode a control payload as strictly as execd does: one JSON object,
    each key once, names exact (Python's dict keys are case-sensitive)."""
    try:
        msg = json.loads(payload, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise ProtocolError(f"malformed control payload: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a control payload must be a JSON object")
    return msg


def encode(ftype, channel, payload=b"", flags=0):
    """One frame: the 12-byte header, then the payload."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return HEADER.pack(VERSION, TYPES[ftype], flags, 0, channel, len(payload)) + payload


def parse_header(b):
    """Check and split a header, as a receiver must before reading the payload."""
    version, ftype, flags, reserved, channel, length = HEADER.unpack(b)
    if version != VERSION:
        raise ProtocolError(f"version {version}, want {VERSION}")
    if reserved != 0:
        raise ProtocolError("reserved byte is not 0")
    if ftype not in NAMES:
        raise ProtocolError(f"unknown frame type 0x{ftype:02x}")
    if flags & ~FLAG_EOF or (flags and ftype not in DATA_TYPES):
        raise ProtocolError(f"flags 0x{flags:02x} not allowed on {NAMES[ftype]}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes is over the limit of {MAX_PAYLOAD}")
    return NAMES[ftype], flags, channel, length


def decode(b):
    """Split a whole frame from bytes (for the golden vectors)."""
    name, flags, channel, length = parse_header(b[:HEADER_SIZE])
    payload = b[HEADER_SIZE:]
    if len(payload) != length:
        raise ProtocolError(f"payload is {len(payload)} bytes, header says {length}")
    return name, flags, channel, payload


def recv_exactly(sock, n):
    """The loop every TCP receiver needs: recv() returns what has arrived."""
    parts = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


# --- the certificate's fingerprint ------------------------------------------

def _der_element(b, i):
    """Return (tag, start of content, end of element) of the DER element at i."""
    tag = b[i]
    length = b[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(b[i:i + n], "big")
        i += n
    return tag, i, i + length


def spki_fingerprint(der):
    """SHA256:<base64> of the certificate's SubjectPublicKeyInfo, as rexec pins it."""
    _, start, _ = _der_element(der, 0)  # Certificate SEQUENCE
    _, i, _ = _der_element(der, start)  # tbsCertificate SEQUENCE
    if der[i] == 0xA0:  # [0] version
        _, _, i = _der_element(der, i)
    for _ in range(5):  # serial, signature, issuer, validity, subject
        _, _, i = _der_element(der, i)
    _, _, end = _der_element(der, i)  # subjectPublicKeyInfo
    digest = hashlib.sha256(der[i:end]).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --- known hosts ----------------------------------------------------------------

def known_hosts_path():
    """rexec's known_hosts file, shared with this client."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "rexec", "known_hosts")


def host_port(host, port):
    """host:port as rexec writes it in known_hosts ([v6]:port for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownHosts:
    """Trust on first use, in the file format rexec uses."""

    def __init__(self, path=None):
        self.path = path or known_hosts_path()

    def lookup(self, addr):
        """(fingerprint, line number) pinned for addr, or (None, 0)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    fields = line.split()
                    if len(fields) >= 2 and not fields[0].startswith("#") and fields[0] == addr:
                        return fields[1], n
        except FileNotFoundError:
            pass
        return None, 0

    def check(self, addr, fingerprint):
        """Raise HostKeyError when addr is pinned to another identity; return
        True when it is pinned to this one, False when it is new."""
        want, line = self.lookup(addr)
        if want is None:
            return False
        if want != fingerprint:
            raise HostKeyError(f"host identity of {addr} CHANGED: pinned {want}, now {fingerprint}; "
                               f"someone may be intercepting the connection. If the daemon's identity was "
                               f"recreated on purpose, remove line {line} of {self.path}")
        return True

    def pin(self, addr, fingerprint):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{addr} {fingerprint}\n")


# --- the client ---------------------------------------------------------------

class Client:
    """One connection to execd, logged in with a password."""

    def __init__(self, host, port=DEFAULT_PORT, user=None, password=None,
                 fingerprint=None, plaintext=False, timeout=10.0, known_hosts=None):
        """Connect, check the daemon's identity and log in.

        With fingerprint, the daemon must have that identity. Without it the
        identity is checked against known_hosts (a KnownHosts; by default
        rexec's file): a pinned daemon must match, a new one is pinned once
        it has answered with a valid hello (trust on first use, as rexec)."""
        raw = socket.create_connection((host, port), timeout=timeout)
        self.fingerprint = None
        self.pinned = False  # True when this connection pinned a new daemon
        known = True  # pinned already, or not checked against known_hosts
        addr = host_port(host, port)
        self.sock = raw
        try:
            if not plaintext:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_3
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the daemon's certificate is self-signed: pin it instead
                self.sock = ctx.wrap_socket(raw)
                self.fingerprint = spki_fingerprint(self.sock.getpeercert(binary_form=True))
                if fingerprint and fingerprint != self.fingerprint:
                    raise HostKeyError(f"daemon identity {self.fingerprint} is not the expected {fingerprint}")
                if not fingerprint:
                    known_hosts = known_hosts or KnownHosts()
                    known = known_hosts.check(addr, self.fingerprint)
            self.sock.settimeout(timeout)
            self.next_channel = 1
            self.hello = self._handshake()
            if not plaintext and not fingerprint and not known:
                known_hosts.pin(addr, self.fingerprint)  # only now: it speaks execd
                self.pinned = True
            if self.hello.get("auth"):
                self._login(user, password)
            self.sock.settimeout(None)
        except BaseException:
            self.sock.close()
            raw.close()
            raise

    # frames on the wire

    def send(self, ftype, channel, payload=b"", flags=0):
        self.sock.sendall(encode(ftype, channel, payload, flags))

    def recv(self):
        """The next frame as (type name, flags, channel, payload); pings are answered here."""
        while True:
            name, flags, channel, length = parse_header(recv_exactly(self.sock, HEADER_SIZE))
            payload = recv_exactly(self.sock, length) if length else b""
            if name == "ping":
                self.send("pong", 0, payload)
                continue
            if name == "error":
                msg = loads(payload)
                raise RemoteError(msg.get("code"), msg.get("message"))
            return name, flags, channel, payload

    # steps

    def _handshake(self):
        self.send("hello", 0, {"software": "execd_client.py/1", "max_payload": MAX_PAYLOAD})
        name, _, _, payload = self.recv()
        if name != "hello":
            raise ProtocolError(f"expected hello, got {name}")
        return loads(payload)

    def _login(self, user, password):
        if "password" not in self.hello["auth"]:
            raise ProtocolError(f"the daemon accepts {self.hello['auth']}, and this client only passwords")
        if not user or password is None:
            raise NeedPassword("the daemon requires a login: give a user and a password")
        self.send("auth", 0, {"method": "password", "user": user, "password": password})
        name, _, _, payload = self.recv()
        reply = loads(payload)
        if name != "auth_reply" or not reply.get("ok"):
            raise PermissionError(f"login refused: {reply.get('message', name)}")
        self.user = reply["user"]

    def _open(self, msg):
        channel = self.next_channel
        self.next_channel += 2  # client channels are odd and increasing
        self.send("open", channel, msg)
        name, _, ch, payload = self.recv()
        if name != "open_ok" or ch != channel:
            raise ProtocolError(f"expected open_ok on channel {channel}, got {name} on {ch}")
        return channel, loads(payload)

    def run(self, argv=None, shell=None, stdin=b""):
        """Run a command; return (exit code, stdout bytes, stderr bytes).

        stdin is bytes or a binary file object, sent whole under the
        daemon's flow control (window frames give more credit), and its
        end reaches the command. The exit code is 128+N for a command
        killed by signal N's name (reported in the exit message), as a
        shell would say."""
        msg = {"kind": "exec", "window": WINDOW}
        if shell is not None:
            msg["shell"] = shell
        else:
            msg["argv"] = list(argv)
        channel, ok = self._open(msg)
        credit = ok["window"]
        if isinstance(stdin, (bytes, bytearray, memoryview)):
            stdin = io.BytesIO(bytes(stdin))
        pending = b""   # read from stdin, not sent yet
        in_eof = stdin is None
        eof_sent = False
        out = {"stdout": bytearray(), "stderr": bytearray()}
        unacked = {"stdout": 0, "stderr": 0}
        while True:
            # Send what the credit allows; then read what the daemon says
            # (output, more credit, the exit), never waiting on one side only.
            while credit > 0 and not eof_sent:
                if not pending and not in_eof:
                    pending = stdin.read(min(credit, MAX_PAYLOAD, 64 << 10)) or b""
                    in_eof = not pending
                if pending:
                    chunk, pending = pending[:credit], pending[credit:]
                    self.send("stdin", channel, chunk)
                    credit -= len(chunk)
                elif in_eof:
                    self.send("stdin", channel, b"", FLAG_EOF)
                    eof_sent = True
            name, flags, ch, payload = self.recv()
            if ch != channel:
                continue
            if name in out:
                out[name] += payload
                unacked[name] += len(payload)
                if unacked[name] >= WINDOW // 2:  # give credit back at half the window
                    self.send("window", channel, {"stream": name, "credit": unacked[name]})
                    unacked[name] = 0
            elif name == "window":
                w = loads(payload)
                if w.get("stream") == "stdin":
                    credit += w["credit"]
            elif name == "exit":
                ex = loads(payload)
                code = ex.get("code", 0)
                if code < 0:
                    code = 128 + SIGNALS.get(ex.get("signal", ""), 0)
                return code, bytes(out["stdout"]), bytes(out["stderr"])

    def get(self, remote, local):
        """Fetch a remote file (relative to the home) to local, verified with
        SHA-256, written under a temporary name and renamed when whole."""
        channel, ok = self._open({"kind": "get", "path": remote, "hash": "sha256", "window": WINDOW})
        size = ok.get("info", {}).get("size", 0)
        if os.path.isdir(local) or local.endswith(("/", os.sep)):
            local = os.path.join(local, remote.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
        folder = os.path.dirname(os.path.abspath(local))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(local) + ".", suffix=".part", dir=folder)
        h = hashlib.sha256()
        got = unacked = 0
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    name, flags, ch, payload = self.recv()
                    if ch != channel:
                        continue
                    if name == "data":
                        f.write(payload)
                        h.update(payload)
                        got += len(payload)
                        unacked += len(payload)
                        if unacked >= WINDOW // 2:
                            self.send("window", channel, {"stream": "data", "credit": unacked})
                            unacked = 0
                    elif name == "done":
                        done = loads(payload)
                        break
            if got != size or done["size"] != size:
                raise ProtocolError(f"{remote}: got {got} bytes of {size}")
            if h.hexdigest() != done["hash"]:
                raise ProtocolError(f"{remote}: SHA-256 mismatch: the copy is damaged")
            os.replace(tmp, local)
        except BaseException:
            os.unlink(tmp)
            raise
        self.last_local = local
        return size

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NeedPassword(ValueError):
    """The daemon asks for a login and no password was given."""


# Linux signal numbers, for 128+N.
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
           "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}


def split_host(arg):
    """HOST, HOST:PORT, [V6] or [V6]:PORT, as rexec takes them."""
    if arg.startswith("["):
        host, _, rest = arg[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif arg.count(":") == 1:
        host, _, port = arg.partition(":")
    else:
        host, port = arg, ""
    if port and not port.isdigit():
        raise ValueError(f"bad port in {arg!r}")
    return host, int(port or DEFAULT_PORT)


def tty_password(prompt):
    """Ask on the terminal, as rexec does; None when there is no terminal."""
    try:
        with open("/dev/tty", "r+b", buffering=0):
            pass
    except OSError:
        return None
    return getpass.getpass(prompt)


def main(argv=None):
    p = argparse.ArgumentParser(description="Reference client for execd (standard library only).")
    p.add_argument("--user", "-l", default=os.environ.get("USER"))
    p.add_argument("--fingerprint", help="the daemon's SHA256:... identity (execd fingerprint); refused if it differs")
    p.add_argument("--known-hosts", help="pinned identities (default: rexec's known_hosts)")
    p.add_argument("--plaintext", action="store_true", help="no TLS (execd --insecure-plaintext)")
    p.add_argument("host", help="HOST or HOST:PORT")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a command; stdin, when not a terminal, is its input")
    r.add_argument("argv", nargs="+")
    g = sub.add_parser("get", help="fetch a file (into LOCAL when it is a directory)")
    g.add_argument("remote")
    g.add_argument("local")
    a = p.parse_args(argv)

    def say(msg):
        print(f"execd_client: {msg}", file=sys.stderr)

    def work(c):
        if c.pinned:
            say(f"pinned new host {host_port(host, port)} ({c.fingerprint}) in {kh.path}")
        if a.cmd == "run":
            stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer
            try:
                code, out, err = c.run(a.argv, stdin=stdin)
            except RemoteError as e:
                if e.code == "exec_failed":
                    say(e.message)
                    return 127  # as rexec and a shell: the command could not be started
                raise
            sys.stdout.buffer.write(out)
            sys.stderr.buffer.write(err)
            return code
        size = c.get(a.remote, a.local)
        say(f"{c.last_local}: {size} bytes, SHA-256 verified")
        return 0

    try:
        host, port = split_host(a.host)
        kh = KnownHosts(a.known_hosts)
        password = os.environ.get("REXEC_PASSWORD")
        try:
            with Client(host, port, a.user, password, a.fingerprint, a.plaintext, known_hosts=kh) as c:
                return work(c)
        except NeedPassword:
            password = tty_password(f"{a.user}@{a.host}'s password: ")
            if password is None:
                say("the daemon requires a login and there is no terminal to ask for a password: set REXEC_PASSWORD")
                return 255
            with Client(host, port, a.user, password, a.fingerprint, a.plaintext, known_hosts=kh) as c:
                return work(c)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line, never a traceback: the error says what went wrong
        say(str(e) or type(e).__name__)
        return 255


if __name__ == "__main__":
    sys.exit(main())
