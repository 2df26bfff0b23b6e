"""Tests of the reference client: the golden frames shared with the Go
tests (frame/testdata/golden), and, when EXECD_ADDR is set, a live daemon
(cmd/rexec's TestE2EPythonClient starts one and runs this file).

    python3 -m unittest clients/python/test_execd_client.py
"""

import hashlib
import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import execd_client as ec  # noqa: E402

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "frame" / "testdata" / "golden"


class GoldenFrames(unittest.TestCase):
    """Every frame type, as the Go code writes it, decoded with struct."""

    def frames(self):
        files = sorted(GOLDEN.glob("*.hex"))
        self.assertEqual(len(files), 21, f"one golden frame per type in {GOLDEN}")
        for f in files:
            yield f.stem, bytes.fromhex(f.read_text().strip())

    def test_headers(self):
        for name, b in self.frames():
            with self.subTest(name):
                version, ftype, flags, reserved, channel, length = struct.unpack(">BBBBII", b[:12])
                self.assertEqual(version, 1)
                self.assertEqual(ftype, ec.TYPES[name], "the file is named after its type")
                self.assertEqual(reserved, 0)
                self.assertEqual(length, len(b) - 12)
                got = ec.decode(b)
                self.assertEqual(got[0], name)
                self.assertEqual(ec.encode(name, channel, got[3], flags), b, "encoding gives the same bytes back")

    def test_payloads(self):
        for name, b in self.frames():
            with self.subTest(name):
                kind, flags, channel, payload = ec.decode(b)
                if kind in ("ping", "pong", "close") or ec.TYPES[kind] in ec.DATA_TYPES:
                    continue
                msg = json.loads(payload)
                self.assertIsInstance(msg, dict)
        _, _, _, p = ec.decode(bytes.fromhex((GOLDEN / "reply.hex").read_text().strip()))
        entry = json.loads(p)["entries"][0]
        self.assertEqual(entry["name"], "日志 1.txt")
        self.assertEqual(entry["size"], 5 << 30, "sizes beyond 4 GiB stay exact")
        _, flags, _, p = ec.decode(bytes.fromhex((GOLDEN / "stdin.hex").read_text().strip()))
        self.assertEqual((flags, p), (ec.FLAG_EOF, b"abc\n"))

    def test_bad_headers(self):
        good = ec.encode("stdout", 1, b"hi")
        for label, b in {
            "version": b"\x02" + good[1:],
            "reserved": good[:3] + b"\x01" + good[4:],
            "type": good[:1] + b"\x99" + good[2:],
            "flags on a control frame": ec.encode("hello", 0, b"{}")[:2] + b"\x01" + ec.encode("hello", 0, b"{}")[3:],
            "too large": struct.pack(">BBBBII", 1, 0x21, 0, 0, 1, 0xFFFFFFFF),
        }.items():
            with self.subTest(label):
                with self.assertRaises(ec.ProtocolError):
                    ec.parse_header(b[:12])


class StrictPayloads(unittest.TestCase):
    """Control payloads are read as strictly as execd reads them."""

    def test_loads(self):
        self.assertEqual(ec.loads(b'{"code":0,"duration_ms":1}'), {"code": 0, "duration_ms": 1})
        for bad in (b'{"argv":["true"],"argv":["rm"]}', b'[1]', b'{', b'{"a":1} {}'):
            with self.subTest(bad):
                with self.assertRaises(ec.ProtocolError):
                    ec.loads(bad)
        self.assertNotIn("kind", ec.loads(b'{"KIND":"exec"}'), "names are exact")

    def test_split_host(self):
        self.assertEqual(ec.split_host("lab1"), ("lab1", 7022))
        self.assertEqual(ec.split_host("lab1:7023"), ("lab1", 7023))
        self.assertEqual(ec.split_host("[::1]:7023"), ("::1", 7023))
        self.assertEqual(ec.host_port("::1", 7023), "[::1]:7023")


def unlocked(path):
    """True when path exists and nobody holds its flock (execd locks a
    partial copy while it writes it)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)




class HelloRules(unittest.TestCase):
    """A hello that breaks SPEC.md is refused before anything is pinned."""

    def test_check_hello(self):
        good = {"software": "execd", "max_payload": 262144, "auth": ["publickey"],
                "challenge": "A" * 43 + "="}
        ec.check_hello(good)
        ec.check_hello({"max_payload": 4096})
        for bad in ([], {"max_payload": 0}, {"max_payload": 1 << 30}, {"max_payload": "262144"},
                    {"max_payload": True}, {"max_payload": 262144, "keepalive_ms": -1},
                    {"max_payload": 262144, "auth": "publickey", "challenge": "A" * 43 + "="},
                    {"max_payload": 262144, "auth": ["publickey"]},
                    {"max_payload": 262144, "auth": ["publickey"], "challenge": "AAAA"}):
            with self.assertRaises(ec.ProtocolError, msg=repr(bad)):
                ec.check_hello(bad)

    def test_busy(self):
        """A daemon that writes its busy line and closes, every time: the
        client retries (with backoff) until its timeout, then says why."""
        import socket
        import threading
        self.assertEqual(ec.parse_busy(b"EXECD-BUSY 200 too many\n"), (0.2, "too many"))
        self.assertIsNone(ec.parse_busy(b"EXECD-BUSY x y\n"))
        self.assertIsNone(ec.parse_busy(b"\x16\x03\x03"))
        ln = socket.socket()
        ln.bind(("127.0.0.1", 0))
        ln.listen(64)
        accepted = []

        def refuse(c):  # as the daemon: the line, the write side shut, what comes drained
            c.sendall(b"EXECD-BUSY 50 too many connections from this address still logging in\n")
            c.shutdown(socket.SHUT_WR)
            c.settimeout(0.5)
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass
            c.close()

        def serve():
            while True:
                try:
                    c, _ = ln.accept()
                except OSError:
                    return
                accepted.append(1)
                threading.Thread(target=refuse, args=(c,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        began = time.monotonic()
        try:
            with self.assertRaises(ec.Busy) as cm:
                ec.Client("127.0.0.1", ln.getsockname()[1], "u", "p", fingerprint="SHA256:x", timeout=1.5)
        finally:
            ln.close()
        self.assertIn("is busy: too many connections from this address still logging in", str(cm.exception))
        self.assertGreater(cm.exception.tries, 1)
        self.assertLess(time.monotonic() - began, 5)
        self.assertGreaterEqual(len(accepted), 4, "tried again, each with a probe")

    def test_config_alias(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "config.toml")
            with open(conf, "w") as f:
                f.write('[hosts.lab1]\nhost = "127.0.0.1"\nport = 7023\nuser = "alice"\n')
            self.assertEqual(ec.resolve_alias("lab1", conf), ("127.0.0.1", 7023, "alice", False))
            self.assertEqual(ec.resolve_alias("other", conf), ("other", None, None, False))
            self.assertEqual(ec.resolve_alias("lab1", os.path.join(d, "none.toml")), ("lab1", None, None, False))


@unittest.skipUnless(os.environ.get("EXECD_ADDR"), "set EXECD_ADDR (and EXECD_USER, EXECD_PASSWORD, EXECD_FINGERPRINT) to test against a daemon")
class LiveDaemon(unittest.TestCase):
    """Against a real execd: TLS, hello, password login, exec, get."""

    def connect(self, password=None, fingerprint=None):
        host, _, port = os.environ["EXECD_ADDR"].rpartition(":")
        return ec.Client(host, int(port), os.environ["EXECD_USER"],
                         password if password is not None else os.environ["EXECD_PASSWORD"],
                         fingerprint or os.environ["EXECD_FINGERPRINT"])

    def test_run(self):
        with self.connect() as c:
            self.assertEqual(c.fingerprint, os.environ["EXECD_FINGERPRINT"])
            self.assertEqual(c.user, os.environ["EXECD_USER"])
            code, out, err = c.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
            self.assertEqual((code, out, err), (3, b"out\n", b"err\n"))
            code, out, _ = c.run(["sort"], stdin=b"b\na\n")
            self.assertEqual((code, out), (0, b"a\nb\n"))
            code, out, _ = c.run(shell="printf '%s' 中文; head -c 3000000 /dev/zero | wc -c")
            self.assertEqual(out.decode(), "中文3000000\n")
            code, out, _ = c.run(["head", "-c", "3000000", "/dev/urandom"])
            self.assertEqual(len(out), 3000000, "flow control: window frames keep it coming")
            code, _, _ = c.run(shell="kill -TERM $$")
            self.assertEqual(code, 143)
            with self.assertRaises(ec.RemoteError) as e:
                c.run(["/nonexistent/program"])
            self.assertEqual(e.exception.code, "exec_failed")

    def test_get(self):
        served = pathlib.Path(os.environ["EXECD_HOME"])
        data = os.urandom(700000)
        (served / "数据.bin").write_bytes(data)
        with tempfile.TemporaryDirectory() as d, self.connect() as c:
            local = os.path.join(d, "copy.bin")
            self.assertEqual(c.get("数据.bin", local), len(data))
            self.assertEqual(hashlib.sha256(pathlib.Path(local).read_bytes()).hexdigest(), hashlib.sha256(data).hexdigest())
            self.assertEqual(os.listdir(d), ["copy.bin"], "no partial file left")
            with self.assertRaises(ec.RemoteError) as e:
                c.get("../../etc/passwd", os.path.join(d, "x"))
            self.assertEqual(e.exception.code, "path_escape")
            self.assertEqual(os.listdir(d), ["copy.bin"])

    def test_stdin_whole(self):
        """3 MB of stdin arrive whole: sent under the daemon's flow control."""
        with self.connect() as c:
            data = os.urandom(3000000)
            code, out, _ = c.run(["sha256sum"], stdin=data)
            self.assertEqual((code, out.split()[0].decode()), (0, hashlib.sha256(data).hexdigest()))
            code, out, _ = c.run(["wc", "-c"], stdin=io.BytesIO(b"\0" * 3000000))
            self.assertEqual(out.strip(), b"3000000")

    def test_trust_on_first_use(self):
        host, _, port = os.environ["EXECD_ADDR"].rpartition(":")
        with tempfile.TemporaryDirectory() as d:
            kh = ec.KnownHosts(os.path.join(d, "rexec", "known_hosts"))
            args = (host, int(port), os.environ["EXECD_USER"], os.environ["EXECD_PASSWORD"])
            with ec.Client(*args, known_hosts=kh) as c:
                self.assertTrue(c.pinned)
            line = f"{host}:{port} {os.environ['EXECD_FINGERPRINT']}\n"
            self.assertEqual(pathlib.Path(kh.path).read_text(), line, "rexec's format")
            with ec.Client(*args, known_hosts=kh) as c:
                self.assertFalse(c.pinned, "pinned once")
            pathlib.Path(kh.path).write_text(f"{host}:{port} SHA256:{'A' * 43}\n")
            with self.assertRaises(ec.HostKeyError) as e:
                ec.Client(*args, known_hosts=kh)
            self.assertIn("CHANGED", str(e.exception))
            self.assertIn("remove line 1", str(e.exception))

    def cli(self, *args, stdin=b"", password=True, new_session=False):
        env = dict(os.environ, XDG_CONFIG_HOME=self.config)
        if password:
            env["REXEC_PASSWORD"] = os.environ["EXECD_PASSWORD"]
        else:
            env.pop("REXEC_PASSWORD", None)
        p = subprocess.run([sys.executable, ec.__file__, "--user", os.environ["EXECD_USER"], os.environ["EXECD_ADDR"], *args],
                           input=stdin, capture_output=True, env=env, timeout=60, start_new_session=new_session)
        return p.returncode, p.stdout, p.stderr.decode()

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            self.config = d
            code, out, err = self.cli("run", "--", "wc", "-c", stdin=b"\0" * 3000000)
            self.assertEqual((code, out.strip()), (0, b"3000000"), err)
            self.assertIn("pinned new host", err)
            code, out, err = self.cli("run", "--", "no-such-command")
            self.assertEqual(code, 127, err)
            self.assertEqual(err.count("\n"), 1, err)
            (pathlib.Path(os.environ["EXECD_HOME"]) / "cli.txt").write_bytes(b"hello")
            code, _, err = self.cli("get", "cli.txt", d + "/")
            self.assertEqual(code, 0, err)
            self.assertEqual(pathlib.Path(d, "cli.txt").read_bytes(), b"hello")
            code, _, err = self.cli("run", "true", password=False, new_session=True)
            self.assertEqual(code, 255)
            self.assertNotIn("Traceback", err)
            self.assertEqual(err.count("\n"), 1, err)
            self.assertIn("REXEC_PASSWORD", err)
            code, _, err = self.cli("--fingerprint", "SHA256:" + "A" * 43, "run", "true")
            self.assertEqual(code, 255)
            self.assertNotIn("(", err.split(":", 1)[1][:2], "a sentence, not a tuple")
            self.assertIn("is not the expected", err)

    def test_exec_options(self):
        """Streaming callbacks and files, env, dir, timeout, pty, statuses."""
        with self.connect() as c:
            chunks = []
            with tempfile.TemporaryFile() as errf:
                res = c.exec(["sh", "-c", "head -c 5000000 /dev/zero; echo oops >&2; exit 9"],
                             stdout=chunks.append, stderr=errf)
                errf.seek(0)
                self.assertEqual(errf.read(), b"oops\n")
            self.assertEqual(res.code, 9)
            self.assertEqual(res.stdout, b"", "streamed, not kept")
            self.assertEqual(sum(map(len, chunks)), 5000000)
            self.assertGreater(len(chunks), 1, "delivered as it came")
            pathlib.Path(os.environ["EXECD_HOME"], "sub dir").mkdir(exist_ok=True)
            res = c.exec(shell='echo "$GREETING"; pwd', env={"GREETING": "hi there"}, dir="sub dir")
            self.assertEqual(res.stdout.decode().splitlines(), ["hi there", os.path.join(os.environ["EXECD_HOME"], "sub dir")])
            res = c.exec(["sleep", "30"], timeout=0.3)
            self.assertTrue(res.timed_out)
            self.assertEqual((res.code, res.signal), (143, "TERM"))
            res = c.exec(shell="test -t 0 && echo tty; echo err >&2", pty={"cols": 100, "rows": 30})
            self.assertEqual(res.stdout, b"tty\r\nerr\r\n", "a pty merges the streams")
            with self.assertRaises(ec.ExecFailed) as e:
                c.exec(["no-such-program-here"])
            self.assertEqual(ec.exit_status(e.exception), 127)

    def test_put_get_50mib(self):
        """A 50 MiB file each way, verified, atomic, and resumed."""
        served = pathlib.Path(os.environ["EXECD_HOME"])
        data = os.urandom(50 << 20)
        with tempfile.TemporaryDirectory() as d, self.connect() as c:
            src = pathlib.Path(d, "src.bin")
            src.write_bytes(data)
            self.assertEqual(c.put(str(src), "big.bin"), len(data))
            self.assertEqual(hashlib.sha256((served / "big.bin").read_bytes()).digest(), hashlib.sha256(data).digest())
            self.assertEqual([p.name for p in served.glob(".big.bin*")], [], "no partial copy left")
            self.assertEqual(c.get("big.bin", d + "/"), len(data))
            self.assertEqual(pathlib.Path(d, "big.bin").read_bytes(), data)
            # a get resumes from a partial copy that matches, and starts over from one that does not
            part = pathlib.Path(d, ".again.bin.rexec-part")
            part.write_bytes(data[:20 << 20])
            (served / "again.bin").write_bytes(data)
            c.get("again.bin", os.path.join(d, "again.bin"))
            self.assertEqual(c.last_offset, 20 << 20)
            self.assertEqual(pathlib.Path(d, "again.bin").read_bytes(), data)
            part.write_bytes(b"x" * 1000)
            c.get("again.bin", os.path.join(d, "again.bin"))
            self.assertEqual(c.last_offset, 0)
            self.assertEqual(pathlib.Path(d, "again.bin").read_bytes(), data)
            # a put cut off keeps the daemon's partial copy; the next put resumes it
            raw = self.connect()
            msg = {"kind": "put", "path": "cut.bin", "hash": "sha256", "size": len(data), "mode": 0o644, "window": 1}
            ch, ok = raw._open(msg)
            raw.send("data", ch, data[:min(ok["window"], 200000)])
            raw.sock.shutdown(2)
            raw.close()
            # the daemon holds a lock on its partial copy until it has
            # written what arrived and seen the connection end
            # (bounded generously: CI runs this beside the load tests)
            part = served / ".cut.bin.rexec-part"
            deadline = time.time() + 60
            while not unlocked(part):
                self.assertLess(time.time(), deadline, f"the daemon kept its partial copy locked (exists: {part.exists()})")
                time.sleep(0.02)
            src.write_bytes(data)
            c.put(str(src), "cut.bin")
            self.assertGreater(c.last_offset, 0, "resumed")
            self.assertEqual((served / "cut.bin").read_bytes(), data)
            # a stream of unknown size
            c.put(io.BytesIO(b"streamed\n"), "stream.txt")
            self.assertEqual((served / "stream.txt").read_bytes(), b"streamed\n")

    def test_file_session(self):
        served = pathlib.Path(os.environ["EXECD_HOME"])
        with self.connect() as c:
            fs = c.fs()
            fs.mkdir("fs/a/b", parents=True)
            (served / "fs" / "a" / "f.txt").write_bytes(b"abc")
            self.assertEqual([e["name"] for e in fs.list("fs/a")], ["b", "f.txt"])
            self.assertEqual(fs.stat("fs/a/f.txt")["size"], 3)
            self.assertEqual(fs.checksum("fs/a/f.txt"), hashlib.sha256(b"abc").hexdigest())
            fs.rename("fs/a/f.txt", "fs/g.txt")
            self.assertEqual(fs.chdir("fs"), "~/fs")
            self.assertEqual(sorted(e["name"] for e in fs.list()), ["a", "g.txt"])
            fs.remove("a", recursive=True)
            with self.assertRaises(ec.RemoteError) as e:
                fs.stat("a")
            self.assertEqual(e.exception.code, "not_found")
            self.assertEqual(ec.exit_status(e.exception), 1)
            with self.assertRaises(ec.RemoteError) as e:
                fs.list("../..")
            self.assertEqual(e.exception.code, "path_escape")

    def test_key_login(self):
        """An unencrypted key signs through OpenSSL with no package; a
        protected one needs cryptography and its passphrase."""
        key, user = os.environ.get("EXECD_KEY"), os.environ.get("EXECD_KEY_USER")
        host, _, port = os.environ["EXECD_ADDR"].rpartition(":")
        fp = os.environ["EXECD_FINGERPRINT"]
        with ec.Client(host, int(port), user, fingerprint=fp, key=key) as c:
            self.assertEqual(c.user, user)
            self.assertEqual(c.run(["echo", "by key"]).stdout, b"by key\n")
        with self.assertRaises(PermissionError):
            # the key proves nothing for another user
            ec.Client(host, int(port), os.environ["EXECD_USER"], fingerprint=fp, key=key)
        # the proof is the standard ed25519 signature: cryptography agrees, when it is here
        pub, sign = ec.load_key(key)
        protected = os.environ["EXECD_KEY_PROTECTED"]
        try:
            from cryptography.hazmat.primitives.asymmetric import ed25519
        except ImportError:
            with self.assertRaises(ec.KeyLoginUnavailable) as e:
                ec.load_key(protected, b"py pass")
            self.assertIn("cryptography package", str(e.exception))
            return
        ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(sign(b"message"), b"message")
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            with self.assertRaises(ec.KeyLoginUnavailable) as e:
                ec.load_key(protected, b"py pass")
            self.assertIn("bcrypt package", str(e.exception))
            return
        with self.assertRaises(ec.KeyLoginUnavailable):
            ec.load_key(protected, b"wrong")
        kobj = ec.load_key(protected, b"py pass")
        self.assertEqual(len(kobj[0]), 32)
        from cryptography.hazmat.primitives import serialization
        obj = serialization.load_ssh_private_key(pathlib.Path(protected).read_bytes(), b"py pass")
        with ec.Client(host, int(port), user, fingerprint=fp, key=obj) as c:
            self.assertEqual(c.run(["echo", "protected"]).stdout, b"protected\n")

    def test_key_formats(self):
        """PKCS#8 and OpenSSH files give the same seed."""
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ed25519
        except ImportError:
            self.skipTest("cryptography makes the PKCS#8 file")
        k = ed25519.Ed25519PrivateKey.generate()
        raw = k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ssh = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        self.assertEqual(ec._ed25519_seed(pem)[0], raw)
        self.assertEqual(ec._ed25519_seed(ssh)[0], raw)
        for bad in (b"", b"junk", pem[:-40], ssh.replace(b"A", b"B", 5)):
            ec._ed25519_seed(bad)  # None or a seed, never an exception

    def test_refused(self):
        with self.assertRaises(PermissionError):
            self.connect(password="wrong password")
        with self.assertRaises(Exception) as e:
            self.connect(fingerprint="SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        self.assertIn("not the expected", str(e.exception))


if __name__ == "__main__":
    unittest.main()
