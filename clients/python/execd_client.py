#!/usr/bin/env python3
"""A reference client for execd's wire protocol, in Python's standard library.

It speaks the real protocol (frame/SPEC.md): TLS 1.3, hello, key or
password login, commands (exec), files (get, put, a file session), with
the same 12-byte header every frame starts with:

    version u8 | type u8 | flags u8 | reserved u8 | channel u32 | length u32

    struct.pack(">BBBBII", 1, TYPE, FLAGS, 0, CHANNEL, len(payload)) + payload

It is a library (see README.md beside it) and a command, written to be
read: one function per step, no third-party package required, so that
students can compare it with their own struct code.

    python3 execd_client.py --user alice HOST[:PORT] run -- uname -a
    python3 execd_client.py --user alice HOST get logs/app.log app.log
    python3 execd_client.py --user alice HOST put app.conf etc/app.conf

A key (rexec's, or ~/.ssh/id_ed25519, or -i) is used when the cryptography
package is importable; the password comes from $REXEC_PASSWORD or is asked
for on the terminal.
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
import pathlib
import random
import socket
import ssl
import stat
import struct
import sys
import time
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple, Union

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


class Busy(ConnectionError):
    """The daemon took the TCP connection but will not take a login now
    (too many connections logging in, overall or from this address): it
    said so in its busy line, and Client retried within its timeout."""

    def __init__(self, addr, reason, tries=1):
        super().__init__(f"{addr} is busy: {reason} (tried {tries} times within the timeout; try again later)")
        self.reason = reason
        self.tries = tries


BUSY_PREFIX = b"EXECD-BUSY "  # frame/SPEC.md, "Transport"


def parse_busy(line: bytes) -> Optional[Tuple[float, str]]:
    """(retry after, in seconds; reason) of a busy line, or None."""
    if not line.startswith(BUSY_PREFIX):
        return None
    ms, _, reason = line[len(BUSY_PREFIX):].rstrip(b"\n").partition(b" ")
    if not ms.isdigit():
        return None
    return int(ms) / 1000, reason.decode("utf-8", "replace")


def probe_busy(host: str, port: int, wait: float) -> Optional[Tuple[float, str]]:
    """Connect and read what the daemon says before the client speaks,
    for at most wait seconds: its busy line, parsed, or None (a daemon
    that takes the connection says nothing first)."""
    try:
        raw = socket.create_connection((host, port), timeout=wait)
    except OSError:
        return None
    with raw:
        line = b""
        try:
            while not line.endswith(b"\n") and len(line) < 256:
                chunk = raw.recv(256 - len(line))
                if not chunk:
                    break
                line += chunk
        except OSError:  # a timeout: the daemon waits for a handshake
            return None
    return parse_busy(line)


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


def check_hello(h) -> None:
    """Raises ProtocolError for a daemon's hello that breaks SPEC.md's rules
    (frame.HelloMsg.Validate): max_payload within [4 KiB, 16 MiB], a
    keepalive that is not negative, a 32-byte challenge with auth."""
    if not isinstance(h, dict):
        raise ProtocolError("the hello is not a JSON object")
    mp = h.get("max_payload")
    if not isinstance(mp, int) or isinstance(mp, bool) or not (4 << 10) <= mp <= (16 << 20):
        raise ProtocolError(f"invalid hello: max_payload {mp!r} outside [4096, 16777216]")
    ka = h.get("keepalive_ms", 0)
    if not isinstance(ka, int) or isinstance(ka, bool) or ka < 0:
        raise ProtocolError(f"invalid hello: keepalive_ms {ka!r}")
    auth = h.get("auth") or []
    if not isinstance(auth, list) or not all(isinstance(m, str) for m in auth):
        raise ProtocolError("invalid hello: auth is not a list of names")
    if auth:
        try:
            challenge = base64.b64decode(h.get("challenge") or "", validate=True)
        except (ValueError, TypeError):
            challenge = b""
        if len(challenge) != 32:
            raise ProtocolError("invalid hello: auth needs a challenge of 32 bytes")


def config_path():
    """rexec's config.toml, whose [hosts.NAME] aliases this client follows."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "rexec", "config.toml")


def resolve_alias(name, path=None):
    """(host, port, user, plaintext) of an alias of rexec's config.toml, as
    rexec resolves it; port and user are None when the alias does not set
    them. A name that is no alias (or no config file, or a Python without
    tomllib) is itself."""
    try:
        import tomllib
        with open(path or config_path(), "rb") as f:
            alias = tomllib.load(f).get("hosts", {}).get(name)
    except (ImportError, OSError, ValueError):
        alias = None
    if not isinstance(alias, dict):
        return name, None, None, False
    return (alias.get("host") or name, alias.get("port") or None, alias.get("user") or None,
            bool(alias.get("plaintext", False)))


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

class ExecResult:
    """What a command left: its exit status as rexec reports it (0..255,
    128+N for signal N), the output that was captured (empty when it went
    to a callback or a file), and how it ended."""

    def __init__(self, code: int, stdout: bytes, stderr: bytes, signal: Optional[str] = None,
                 timed_out: bool = False, message: str = "", duration_ms: int = 0) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.signal = signal
        self.timed_out = timed_out
        self.message = message
        self.duration_ms = duration_ms

    def __iter__(self):  # code, out, err = client.run(...)
        return iter((self.code, self.stdout, self.stderr))

    def __repr__(self) -> str:
        return f"ExecResult(code={self.code}, stdout={len(self.stdout)} bytes, stderr={len(self.stderr)} bytes)"


Sink = Union[None, Callable[[bytes], Any], BinaryIO]


def _sink(target: Sink, buf: bytearray) -> Callable[[bytes], Any]:
    """Where a stream's chunks go: a callback, a binary file, or buf."""
    if target is None:
        return buf.extend
    if callable(target):
        return target
    return target.write


class Client:
    """One connection to execd: TLS, the daemon's identity pinned, logged in
    with a key or a password. One operation at a time."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, user: Optional[str] = None,
                 password: Optional[str] = None, fingerprint: Optional[str] = None,
                 plaintext: bool = False, timeout: float = 10.0,
                 known_hosts: Optional["KnownHosts"] = None, key: Union[None, str, Any] = "default",
                 strict: bool = False) -> None:
        """Connect, check the daemon's identity and log in.

        With fingerprint, the daemon must have that identity. Without it the
        identity is checked against known_hosts (a KnownHosts; by default
        rexec's file): a pinned daemon must match, a changed one is refused
        (HostKeyError), a new one is pinned once it has answered with a
        valid hello (trust on first use, as rexec), or refused with strict.

        key: a private key file (OpenSSH or PKCS#8 ed25519), an ed25519 key
        object of the cryptography package, None for none, or "default":
        rexec's key ($XDG_CONFIG_HOME/rexec/id_ed25519), else
        ~/.ssh/id_ed25519, when it exists. A key is tried before the
        password; KeyLoginUnavailable says why a key could not be used."""
        self.user = user
        self.key_note = ""  # why a key was not used, when it was not
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            tries += 1
            try:
                self._connect(host, port, password, fingerprint, plaintext, timeout, known_hosts, key, strict)
                return
            except (ssl.SSLError, ProtocolError, ConnectionError) as e:
                # A daemon that will not take the connection now says so
                # in a line before any handshake, which TLS took for a bad
                # record: look again, on a connection of its own.
                busy = probe_busy(host, port, min(0.5, max(deadline - time.monotonic(), 0.01)))
                if busy is None:
                    raise
                retry, reason = busy
                wait = min(max(retry, 0.05) * (2 ** min(tries - 1, 5)), 2.0)
                wait = wait / 2 + random.random() * wait
                if time.monotonic() + wait > deadline:
                    raise Busy(host_port(host, port), reason, tries) from e
                time.sleep(wait)

    def _connect(self, host, port, password, fingerprint, plaintext, timeout, known_hosts, key, strict) -> None:
        """One attempt of __init__'s."""
        user = self.user
        raw = socket.create_connection((host, port), timeout=timeout)
        # Small frames go at once: with Nagle's algorithm the hello, written
        # right after TLS's last handshake message, waits for the daemon's
        # delayed ACK (40 ms on Linux).
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fingerprint = None
        self.pinned = False  # True when this connection pinned a new daemon
        known = True  # pinned already, or not checked against known_hosts
        addr = host_port(host, port)
        self.sock = raw
        self.plaintext = plaintext
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
                    if not known and strict:
                        raise HostKeyError(f"{addr} is not in {known_hosts.path} and strict checking is on "
                                           f"(its identity is {self.fingerprint})")
            self.sock.settimeout(timeout)
            self.next_channel = 1
            self.hello = self._handshake()
            self.peer_max = min(int(self.hello.get("max_payload") or MAX_PAYLOAD), 16 << 20)
            if not plaintext and not fingerprint and not known:
                known_hosts.pin(addr, self.fingerprint)  # only now: it speaks execd
                self.pinned = True
            if self.hello.get("auth"):
                self._login(user, password, key)
            self.sock.settimeout(None)
        except BaseException:
            self.sock.close()
            raw.close()
            raise

    # frames on the wire

    def send(self, ftype: str, channel: int, payload: Union[bytes, dict] = b"", flags: int = 0) -> None:
        self.sock.sendall(encode(ftype, channel, payload, flags))

    def recv(self) -> Tuple[str, int, int, bytes]:
        """The next frame as (type name, flags, channel, payload); pings are
        answered here, an error frame is raised as RemoteError."""
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

    def recv_on(self, channel: int) -> Tuple[str, int, bytes]:
        """The next frame of one channel; late frames of ended channels are dropped."""
        while True:
            name, flags, ch, payload = self.recv()
            if ch == channel:
                return name, flags, payload

    # steps

    def _handshake(self) -> dict:
        self.send("hello", 0, {"software": "execd_client.py/2", "max_payload": MAX_PAYLOAD})
        name, _, _, payload = self.recv()
        if name != "hello":
            raise ProtocolError(f"expected hello, got {name}")
        hello = loads(payload)
        check_hello(hello)  # before anything is pinned: an endpoint that is not execd is not
        return hello

    def _login(self, user: Optional[str], password: Optional[str], key: Any) -> None:
        methods = self.hello["auth"]
        if not user:
            raise NeedPassword("the daemon requires a login: give a user name")
        reasons = []
        if "publickey" in methods and key is not None:
            try:
                signer = load_key(key)
            except KeyLoginUnavailable as e:
                self.key_note = str(e)
                signer = None
            if signer is not None:
                binding = b"\0" * 32 if self.plaintext else export_binding(self.sock)
                if binding is None:
                    self.key_note = ("key login needs the TLS session's keying material, which this Python's "
                                     "ssl module does not give; logging in with a password")
                else:
                    pub, sign = signer
                    proof = proof_bytes(user, base64.b64decode(self.hello["challenge"]), binding)
                    reply = self._auth({"method": "publickey", "user": user,
                                        "key": base64.b64encode(pub).decode(),
                                        "sig": base64.b64encode(sign(proof)).decode()})
                    if reply.get("ok"):
                        return
                    reasons.append(reply.get("message", "refused"))
        if "password" in methods and password is not None:
            reply = self._auth({"method": "password", "user": user, "password": password})
            if reply.get("ok"):
                return
            reasons.append(reply.get("message", "refused"))
        if reasons:
            raise PermissionError(f"login refused: {'; '.join(reasons)}")
        if "password" in methods:
            why = f" ({self.key_note})" if self.key_note else ""
            raise NeedPassword(f"the daemon requires a login and no usable key or password was given{why}")
        raise KeyLoginUnavailable(self.key_note or f"the daemon accepts only {', '.join(methods)} and no key was given")

    def _auth(self, msg: dict) -> dict:
        self.send("auth", 0, msg)
        name, _, _, payload = self.recv()
        reply = loads(payload)
        if name != "auth_reply":
            raise ProtocolError(f"expected auth_reply, got {name}")
        if reply.get("ok"):
            self.user = reply["user"]
            self.allow = reply.get("allow", [])
        return reply

    def _open(self, msg: dict) -> Tuple[int, dict]:
        channel = self.next_channel
        self.next_channel += 2  # client channels are odd and increasing
        self.send("open", channel, msg)
        name, _, payload = self.recv_on(channel)
        if name != "open_ok":
            raise ProtocolError(f"expected open_ok on channel {channel}, got {name}")
        return channel, loads(payload)

    def run(self, argv: Optional[Sequence[str]] = None, shell: Optional[str] = None,
            stdin: Union[None, bytes, BinaryIO] = b"", **kw: Any) -> ExecResult:
        """exec, with stdin given as bytes by default: (code, out, err) = run(...)."""
        return self.exec(argv, shell=shell, stdin=stdin, **kw)

    def exec(self, argv: Optional[Sequence[str]] = None, *, shell: Optional[str] = None,
             stdin: Union[None, bytes, BinaryIO] = None, stdout: Sink = None, stderr: Sink = None,
             env: Optional[Dict[str, str]] = None, dir: Optional[str] = None,
             timeout: Optional[float] = None, pty: Union[bool, dict, None] = None,
             encoding: Optional[str] = None) -> ExecResult:
        """Run a command: argv without a shell, or a shell command line.

        stdin is bytes or a binary file object, sent whole under the
        daemon's flow control, its end reaching the command; None sends
        only the end. stdout and stderr go to a callback taking each chunk,
        to a binary file, or (None) into the result. env adds variables;
        dir is the working directory under the home; timeout (seconds) is
        enforced by the daemon; pty True (or {"term", "cols", "rows"})
        runs the command on a terminal, stderr merged into stdout.

        A command that cannot start raises ExecFailed (status 127)."""
        msg: Dict[str, Any] = {"kind": "exec", "window": WINDOW}
        if shell is not None:
            msg["shell"] = shell
        else:
            msg["argv"] = list(argv or [])
        if env:
            msg["env"] = [f"{k}={v}" for k, v in env.items()]
        if dir:
            msg["dir"] = dir
        if timeout:
            msg["timeout_ms"] = max(1, int(timeout * 1000))
        if pty:
            p = pty if isinstance(pty, dict) else {}
            msg["pty"] = {"term": p.get("term", "xterm-256color"), "cols": p.get("cols", 80), "rows": p.get("rows", 24)}
        if encoding:
            msg["encoding"] = encoding
        try:
            channel, ok = self._open(msg)
        except RemoteError as e:
            if e.code == "exec_failed":
                raise ExecFailed(e.code, e.message) from None
            raise
        credit = ok["window"]
        if isinstance(stdin, (bytes, bytearray, memoryview)):
            stdin = io.BytesIO(bytes(stdin))
        pending = b""   # read from stdin, not sent yet
        in_eof = stdin is None
        eof_sent = False
        bufs = {"stdout": bytearray(), "stderr": bytearray()}
        sinks = {"stdout": _sink(stdout, bufs["stdout"]), "stderr": _sink(stderr, bufs["stderr"])}
        unacked = {"stdout": 0, "stderr": 0}
        while True:
            # Send what the credit allows; then read what the daemon says
            # (output, more credit, the exit), never waiting on one side only.
            while credit > 0 and not eof_sent:
                if not pending and not in_eof:
                    pending = stdin.read(min(credit, self.peer_max, 64 << 10)) or b""
                    in_eof = not pending
                if pending:
                    chunk, pending = pending[:credit], pending[credit:]
                    self.send("stdin", channel, chunk)
                    credit -= len(chunk)
                elif in_eof:
                    self.send("stdin", channel, b"", FLAG_EOF)
                    eof_sent = True
            name, flags, payload = self.recv_on(channel)
            if name in sinks:
                if payload:
                    sinks[name](payload)
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
                sig = ex.get("signal") or None
                if code < 0:
                    code = 128 + SIGNALS.get(sig or "", 0)
                elif code > 255:  # a Windows code: its low byte, never 0 for a failure
                    code = (code & 0xFF) or 1
                return ExecResult(code, bytes(bufs["stdout"]), bytes(bufs["stderr"]), sig,
                                  bool(ex.get("timed_out")), ex.get("message", ""), ex.get("duration_ms", 0))

    # files

    def get(self, remote: str, local: str, resume: bool = True) -> int:
        """Fetch a remote file (relative to the home) to local (into it when
        it is a directory), verified with SHA-256: written to a partial copy
        .<name>.rexec-part beside it and renamed into place when whole. An
        interrupted get keeps the partial copy, and the next one resumes
        from it, as rexec's. Returns the size."""
        if os.path.isdir(local) or local.endswith(("/", os.sep)):
            local = os.path.join(local, remote.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
        part = _partial(local)
        msg: Dict[str, Any] = {"kind": "get", "path": remote, "hash": "sha256", "window": WINDOW}
        h = hashlib.sha256()
        offset = 0
        if resume and os.path.isfile(part):
            offset = _hash_file(part, h)
            if offset:
                msg["offset"], msg["prefix_hash"] = offset, h.hexdigest()
        channel, ok = self._open(msg)
        size = ok.get("info", {}).get("size", 0)
        if ok.get("offset", 0) != offset:  # the daemon's file does not start with our copy: from the start
            offset, h = 0, hashlib.sha256()
        self.last_offset = offset
        got = offset
        unacked = 0
        try:
            with open(part, "r+b" if offset else "wb") as f:
                f.seek(offset)
                f.truncate()
                while True:
                    name, flags, payload = self.recv_on(channel)
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
        except RemoteError:
            _unlink(part)  # the daemon gave up on the file: nothing to resume
            raise
        # any other interruption keeps the partial copy for the next get
        if got != size or done["size"] != size or h.hexdigest() != done["hash"]:
            _unlink(part)
            raise IntegrityError(f"{remote}: the copy differs from the daemon's file "
                                 f"({got} bytes of {size}): deleted")
        os.replace(part, local)
        self.last_local = local
        return size

    def put(self, local: Union[str, BinaryIO], remote: str, resume: bool = True,
            mode: Optional[int] = None) -> int:
        """Send a local file (or a binary stream, such as a pipe) to remote,
        relative to the home. The daemon writes a partial copy, checks the
        SHA-256 of the whole and renames it over the destination: a reader
        sees the old file or the new one. An interrupted put of a file
        resumes from what the daemon kept. Returns the size."""
        if not isinstance(local, (str, os.PathLike)):
            return self._put_stream(local, remote, mode)
        st = os.stat(local)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{local}: not a regular file")
        msg = {"kind": "put", "path": remote, "hash": "sha256", "size": st.st_size,
               "mode": mode if mode is not None else st.st_mode & 0o7777,
               "mtime_ns": st.st_mtime_ns, "resume": resume, "window": 1}
        channel, ok = self._open(msg)
        offset = ok.get("offset", 0)
        h = hashlib.sha256()
        if offset:
            with open(local, "rb") as f:
                _hash_file(f, h, offset)
            if h.hexdigest() != ok.get("prefix_hash"):  # the daemon's partial copy is not ours: start over
                self.send("close", channel)
                msg["resume"] = False
                channel, ok = self._open(msg)
                offset, h = 0, hashlib.sha256()
        self.last_offset = offset
        with open(local, "rb") as f:
            f.seek(offset)
            self._send_data(channel, ok["window"], f, h)
        return self._finish_put(channel, remote, st.st_size, h)

    def _put_stream(self, f: BinaryIO, remote: str, mode: Optional[int]) -> int:
        msg: Dict[str, Any] = {"kind": "put", "path": remote, "hash": "sha256", "stream": True, "window": 1}
        if mode is not None:
            msg["mode"] = mode
        channel, ok = self._open(msg)
        h = hashlib.sha256()
        size = self._send_data(channel, ok["window"], f, h)
        return self._finish_put(channel, remote, size, h)

    def _send_data(self, channel: int, credit: int, f: BinaryIO, h: Any) -> int:
        """Send f to its end as data frames under the daemon's credit, then EOF."""
        sent = 0
        while True:
            while credit <= 0:
                name, _, payload = self.recv_on(channel)
                if name == "window":
                    credit += loads(payload)["credit"]
            chunk = f.read(min(credit, self.peer_max, 256 << 10))
            if not chunk:
                self.send("data", channel, b"", FLAG_EOF)
                return sent
            h.update(chunk)
            self.send("data", channel, chunk)
            credit -= len(chunk)
            sent += len(chunk)

    def _finish_put(self, channel: int, remote: str, size: int, h: Any) -> int:
        self.send("done", channel, {"size": size, "hash": h.hexdigest()})
        while True:
            name, _, payload = self.recv_on(channel)
            if name == "done":
                done = loads(payload)
                if done.get("size") != size or done.get("hash") != h.hexdigest():
                    raise IntegrityError(f"{remote}: the daemon confirmed {done.get('size')} bytes, {size} were sent")
                return size

    def fs(self, dir: Optional[str] = None) -> "FileSession":
        """A file session: list, stat, mkdir, remove, rename, checksum..."""
        msg: Dict[str, Any] = {"kind": "fs", "window": 1}
        if dir:
            msg["dir"] = dir
        channel, ok = self._open(msg)
        return FileSession(self, channel, ok.get("cwd", "~"))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FileSession:
    """Requests on an fs channel, answered in order; paths are relative to
    the session's directory (cwd), inside the user's home."""

    def __init__(self, client: Client, channel: int, cwd: str) -> None:
        self.client, self.channel, self.cwd = client, channel, cwd
        self.next_id = 1

    def request(self, op: str, path: str = "", **fields: Any) -> List[dict]:
        """One request; the replies (several for a long listing)."""
        rid = self.next_id
        self.next_id += 1
        self.client.send("request", self.channel, dict(fields, id=rid, op=op, path=path))
        replies = []
        while True:
            name, _, payload = self.client.recv_on(self.channel)
            if name != "reply":
                continue
            r = loads(payload)
            if r.get("id") != rid:
                raise ProtocolError(f"reply for request {r.get('id')}, want {rid}")
            if r.get("error"):
                raise RemoteError(r["error"].get("code"), r["error"].get("message"))
            replies.append(r)
            if not r.get("more"):
                return replies

    def list(self, path: str = ".") -> List[dict]:
        return [e for r in self.request("list", path) for e in r.get("entries", [])]

    def stat(self, path: str) -> dict:
        return self.request("stat", path)[0]["info"]

    def lstat(self, path: str) -> dict:
        return self.request("lstat", path)[0]["info"]

    def mkdir(self, path: str, parents: bool = False, mode: Optional[int] = None) -> None:
        extra = {"mode": mode, "has_mode": True} if mode is not None else {}
        self.request("mkdir", path, parents=parents, **extra)

    def remove(self, path: str, recursive: bool = False) -> None:
        self.request("remove", path, recursive=recursive)

    def rename(self, path: str, to: str) -> None:
        self.request("rename", path, to=to)

    def checksum(self, path: str) -> str:
        return self.request("checksum", path)[0]["hash"]

    def chdir(self, path: str) -> str:
        self.cwd = self.request("chdir", path)[0]["cwd"]
        return self.cwd

    def symlink(self, path: str, target: str) -> None:
        self.request("symlink", path, target=target)

    def setattr(self, path: str, mode: Optional[int] = None, mtime_ns: int = 0) -> None:
        extra = {"mode": mode, "has_mode": True} if mode is not None else {}
        self.request("setattr", path, mtime_ns=mtime_ns, **extra)

    def close(self) -> None:
        self.client.send("close", self.channel)


def _partial(local: str) -> str:
    """The partial copy of a get, as rexec names it."""
    d, name = os.path.split(local)
    return os.path.join(d, "." + name + ".rexec-part")


def _hash_file(f: Union[str, BinaryIO], h: Any, limit: Optional[int] = None) -> int:
    """Feed f (a path or a file) to h, up to limit bytes; return how many."""
    if isinstance(f, str):
        with open(f, "rb") as fo:
            return _hash_file(fo, h, limit)
    n = 0
    while limit is None or n < limit:
        chunk = f.read(1 << 20 if limit is None else min(1 << 20, limit - n))
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return n


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- key login --------------------------------------------------------------------

def proof_bytes(user: str, challenge: bytes, binding: bytes) -> bytes:
    """What a key signs (frame/SPEC.md, Authentication): each part after its length as one byte."""
    out = bytearray()
    for part in (b"execd-auth-v1", user.encode(), challenge, binding):
        out.append(len(part))
        out += part
    return bytes(out)


def default_key_paths() -> List[str]:
    """rexec's key, then ssh's, as rexec looks for them."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [os.path.join(base, "rexec", "id_ed25519"), os.path.join(os.path.expanduser("~"), ".ssh", "id_ed25519")]


def load_key(key: Any, passphrase: Optional[bytes] = None) -> Optional[Tuple[bytes, Callable[[bytes], bytes]]]:
    """(raw public key, sign function) of an ed25519 key: a file, a key
    object of the cryptography package, or "default" (the first of
    default_key_paths that exists; None when none does). Raises
    KeyLoginUnavailable with the reason a key cannot be used.

    An unencrypted key file (OpenSSH or PKCS#8) is read here and signed
    with by the OpenSSL library CPython's ssl module runs on, so that no
    package is needed; a key protected by a passphrase, or a Python whose
    OpenSSL cannot be reached, needs the cryptography package."""
    if key == "default":
        key = next((p for p in default_key_paths() if os.path.exists(p)), None)
        if key is None:
            return None
    if isinstance(key, (str, os.PathLike)):
        try:
            data = pathlib.Path(key).read_bytes()
        except OSError as e:
            raise KeyLoginUnavailable(f"key {key}: {e.strerror}") from None
        seed_pub = _ed25519_seed(data)
        if seed_pub is not None:
            signer = _openssl_signer(*seed_pub)
            if signer is not None:
                return signer
        return _cryptography_key(data, passphrase, str(key))
    return _cryptography_key(key, passphrase, "the key")


def _cryptography_key(key: Any, passphrase: Optional[bytes], name: str) -> Tuple[bytes, Callable[[bytes], bytes]]:
    """load_key through the cryptography package: key is file bytes or a key object."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise KeyLoginUnavailable(f"{name} needs the cryptography package (a passphrase, or no OpenSSL "
                                  "reachable from Python), which is not installed") from None
    if isinstance(key, bytes):
        try:
            if b"OPENSSH PRIVATE KEY" in key:
                key = serialization.load_ssh_private_key(key, passphrase)
            else:
                key = serialization.load_pem_private_key(key, passphrase)
        except (ValueError, TypeError) as e:
            raise KeyLoginUnavailable(f"{name}: {e}") from None
        except Exception as e:  # UnsupportedAlgorithm: OpenSSH's passphrases need the bcrypt package too
            raise KeyLoginUnavailable(f"{name}: {e} (a passphrase of OpenSSH's format needs the bcrypt package)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyLoginUnavailable(f"{name} is a {type(key).__name__}: execd takes ed25519 keys")
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pub, key.sign


def _ssh_string(b: bytes, i: int) -> Tuple[bytes, int]:
    n = struct.unpack(">I", b[i:i + 4])[0]
    if i + 4 + n > len(b):
        raise ValueError("truncated")
    return b[i + 4:i + 4 + n], i + 4 + n


def _ed25519_seed(data: bytes) -> Optional[Tuple[bytes, bytes]]:
    """(32-byte seed, 32-byte public key or b"") of an unencrypted ed25519
    key file: OpenSSH's format or PKCS#8 PEM; None for anything else."""
    try:
        text = data.decode("ascii")
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
        der = base64.b64decode(body, validate=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        magic = b"openssh-key-v1\0"
        try:
            if not der.startswith(magic):
                return None
            i = len(magic)
            cipher, i = _ssh_string(der, i)
            kdf, i = _ssh_string(der, i)
            _, i = _ssh_string(der, i)
            if cipher != b"none" or kdf != b"none" or struct.unpack(">I", der[i:i + 4])[0] != 1:
                return None  # protected by a passphrase
            _, i = _ssh_string(der, i + 4)  # the public key blob
            priv, _ = _ssh_string(der, i)
            if priv[0:4] != priv[4:8]:
                return None
            kind, j = _ssh_string(priv, 8)
            pub, j = _ssh_string(priv, j)
            sk, _ = _ssh_string(priv, j)
            if kind != b"ssh-ed25519" or len(pub) != 32 or len(sk) != 64 or sk[32:] != pub:
                return None
            return sk[:32], pub
        except (ValueError, struct.error, IndexError):
            return None
    if "BEGIN PRIVATE KEY" in text:
        prefix = bytes.fromhex("302e020100300506032b657004220420")  # PKCS#8, ed25519, a 32-byte seed
        if len(der) == 48 and der.startswith(prefix):
            return der[16:], b""
    return None


_libcrypto: Any = None


def _openssl() -> Any:
    """The OpenSSL library of CPython's ssl module, through ctypes; None
    where it cannot be reached."""
    global _libcrypto
    if _libcrypto is None:
        try:
            import _ssl
            import ctypes
            _libcrypto = ctypes.CDLL(_ssl.__file__)
            _libcrypto.EVP_PKEY_new_raw_private_key  # present from OpenSSL 1.1.1
        except (ImportError, OSError, AttributeError):
            _libcrypto = False
    return _libcrypto or None


def _openssl_signer(seed: bytes, pub: bytes) -> Optional[Tuple[bytes, Callable[[bytes], bytes]]]:
    """An ed25519 signer on OpenSSL's EVP interface; its public key must
    be the file's (when the file gives one)."""
    lib = _openssl()
    if lib is None:
        return None
    import ctypes
    c_size = ctypes.c_size_t
    lib.EVP_PKEY_new_raw_private_key.restype = ctypes.c_void_p
    lib.EVP_PKEY_new_raw_private_key.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, c_size]
    lib.EVP_PKEY_get_raw_public_key.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(c_size)]
    lib.EVP_PKEY_free.argtypes = [ctypes.c_void_p]
    lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
    lib.EVP_MD_CTX_free.argtypes = [ctypes.c_void_p]
    lib.EVP_DigestSignInit.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.EVP_DigestSign.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(c_size), ctypes.c_char_p, c_size]
    nid_ed25519 = 1087
    pkey = lib.EVP_PKEY_new_raw_private_key(nid_ed25519, None, seed, 32)
    if not pkey:
        return None
    raw = ctypes.create_string_buffer(32)
    n = c_size(32)
    if lib.EVP_PKEY_get_raw_public_key(pkey, raw, ctypes.byref(n)) != 1 or n.value != 32 or (pub and raw.raw != pub):
        lib.EVP_PKEY_free(pkey)
        return None
    public = raw.raw

    def sign(msg: bytes) -> bytes:
        ctx = lib.EVP_MD_CTX_new()
        try:
            sig = ctypes.create_string_buffer(64)
            size = c_size(64)
            if (lib.EVP_DigestSignInit(ctx, None, None, None, pkey) != 1 or
                    lib.EVP_DigestSign(ctx, sig, ctypes.byref(size), msg, len(msg)) != 1 or size.value != 64):
                raise KeyLoginUnavailable("OpenSSL could not sign with the key")
            return sig.raw
        finally:
            lib.EVP_MD_CTX_free(ctx)

    return public, sign


def export_binding(sock: ssl.SSLSocket) -> Optional[bytes]:
    """The TLS keying material a key proof binds to (RFC 8446 7.5, label
    EXPORTER-execd-auth, 32 bytes), or None where it cannot be had.

    Python's ssl module does not export keying material, so this asks the
    OpenSSL library it runs on, through ctypes, for the SSL object of the
    socket. That object's place in CPython's _ssl socket is checked first:
    the field before it must be the weak reference to this very socket;
    anything else (another Python, another layout) gives None, and the
    login falls back to the password."""
    try:
        import _ssl
        import ctypes
        import weakref
        obj = sock._sslobj
        ptr = ctypes.sizeof(ctypes.c_void_p)
        if sys.implementation.name != "cpython" or not getattr(sys, "_is_gil_enabled", lambda: True)():
            return None
        if ctypes.c_void_p.from_address(id(obj) + 2 * ptr).value != id(weakref.ref(sock)):
            return None
        ssl_ptr = ctypes.c_void_p.from_address(id(obj) + 3 * ptr).value
        lib = ctypes.CDLL(_ssl.__file__)
        export = lib.SSL_export_keying_material
        export.restype = ctypes.c_int
        export.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                           ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        out = ctypes.create_string_buffer(32)
        label = b"EXPORTER-execd-auth"
        if export(ssl_ptr, out, 32, label, len(label), None, 0, 0) != 1:
            return None
        return out.raw
    except (ImportError, AttributeError, OSError, ValueError):
        return None


class NeedPassword(ValueError):
    """The daemon asks for a login and no usable key or password was given."""


class KeyLoginUnavailable(Exception):
    """A key cannot be used here: why, in one line."""


class ExecFailed(RemoteError):
    """The command could not be started (status 127, as a shell says)."""


class IntegrityError(Exception):
    """A transferred file differs from its source; no copy was kept."""


def exit_status(e: BaseException) -> int:
    """rexec's exit status for an exception: 127 for a command that could
    not start, 255 for a failure of the connection, the login or the
    protocol, 1 for a failed file operation."""
    if isinstance(e, ExecFailed):
        return 127
    if isinstance(e, RemoteError) and e.code in FILE_ERRORS:
        return 1
    if isinstance(e, (IntegrityError, OSError)) and not isinstance(e, (ConnectionError, socket.timeout, socket.gaierror, socket.herror)):
        return 1
    return 255


# File error codes (frame/SPEC.md): a failed operation, not a failed connection.
FILE_ERRORS = {"not_found", "exists", "permission_denied", "not_a_directory", "is_a_directory",
               "directory_not_empty", "bad_path", "path_escape", "integrity", "file_changed",
               "no_space", "not_supported", "io_error", "quota_exceeded", "not_permitted"}


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


def _login_name():
    """The account's name from the password database, as rexec finds it
    without $USER; None where there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return None


def tty_password(prompt):
    """Ask on the terminal, as rexec does; None when there is no terminal."""
    try:
        with open("/dev/tty", "r+b", buffering=0):
            pass
    except OSError:
        return None
    return getpass.getpass(prompt)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Client of execd (Python's standard library; key login with the cryptography package).")
    p.add_argument("--user", "-l", default=os.environ.get("USER") or os.environ.get("LOGNAME") or _login_name())
    p.add_argument("--identity", "-i", help="private key file (default: rexec's key, else ~/.ssh/id_ed25519)")
    p.add_argument("--fingerprint", help="the daemon's SHA256:... identity (execd fingerprint); refused if it differs")
    p.add_argument("--known-hosts", help="pinned identities (default: rexec's known_hosts)")
    p.add_argument("--strict-host-key", action="store_true", help="refuse a daemon that is not pinned yet")
    p.add_argument("--plaintext", action="store_true", help="no TLS (execd --insecure-plaintext)")
    p.add_argument("host", help="HOST or HOST:PORT")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a command; stdin, when not a terminal, is its input")
    r.add_argument("argv", nargs="+")
    g = sub.add_parser("get", help="fetch a file (into LOCAL when it is a directory)")
    g.add_argument("remote")
    g.add_argument("local")
    u = sub.add_parser("put", help="send a file (- for stdin)")
    u.add_argument("local")
    u.add_argument("remote")
    ls = sub.add_parser("ls", help="list a directory of the home")
    ls.add_argument("path", nargs="?", default=".")
    a = p.parse_args(argv)
    a.user_given = any(x in ("-l", "--user") or x.startswith("--user=") for x in (argv if argv is not None else sys.argv[1:]))

    def say(msg: str) -> None:
        print(f"execd_client: {msg}", file=sys.stderr)

    def work(c: Client) -> int:
        if c.pinned:
            say(f"pinned new host {host_port(host, port)} ({c.fingerprint}) in {kh.path}")
        if a.cmd == "run":
            stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer
            # output streams as it comes, byte for byte
            res = c.exec(a.argv, stdin=stdin, stdout=_flushing(sys.stdout.buffer), stderr=_flushing(sys.stderr.buffer))
            if res.timed_out or res.message:
                say(res.message or "the command overran its time limit")
            return res.code
        if a.cmd == "get":
            size = c.get(a.remote, a.local)
            say(f"{c.last_local}: {size} bytes, SHA-256 verified")
        elif a.cmd == "put":
            size = c.put(sys.stdin.buffer if a.local == "-" else a.local, a.remote)
            say(f"{a.remote}: {size} bytes, SHA-256 verified")
        else:
            for e in c.fs().list(a.path):
                print(f"{e['type']:8} {e.get('size', 0):>12} {e['name']}")
        return 0

    try:
        host, port = split_host(a.host)
        if ":" not in a.host:  # an alias of rexec's config.toml, as rexec takes it
            host, alias_port, alias_user, alias_plain = resolve_alias(host)
            port = alias_port or port
            a.user = a.user if a.user_given else (alias_user or a.user)
            a.plaintext = a.plaintext or alias_plain
        kh = KnownHosts(a.known_hosts)
        key = a.identity or "default"
        password = os.environ.get("REXEC_PASSWORD")
        opts = dict(fingerprint=a.fingerprint, plaintext=a.plaintext, known_hosts=kh, key=key, strict=a.strict_host_key)
        try:
            with Client(host, port, a.user, password, **opts) as c:
                return work(c)
        except NeedPassword as e:
            if password is not None:
                raise
            password = tty_password(f"{a.user}@{a.host}'s password: ")
            if password is None:
                say(f"{e}; there is no terminal to ask for a password on: set REXEC_PASSWORD")
                return 255
            with Client(host, port, a.user, password, **opts) as c:
                return work(c)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line, never a traceback: the error says what went wrong
        say(str(e) or type(e).__name__)
        return exit_status(e)


def _flushing(f: BinaryIO) -> Callable[[bytes], None]:
    def write(b: bytes) -> None:
        f.write(b)
        f.flush()
    return write


if __name__ == "__main__":
    sys.exit(main())
