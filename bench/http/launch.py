#!/usr/bin/env python3
# bench/http/launch.py: one implementation's turn in the http workload: starts its server, checks
# its answers, loads it with wrk (plain, pipelined, a 1 MiB file), stops it; prints RESULT lines.
"""Usage: launch.py impl=NAME bin=DIR [duration=S] [conns=N] [threads=N] [depth=N]

NAME is soon-<backend> (bin/http-soon; bin/soon-serve for the file; the
backend comes from $SOON_BACKEND, which the driver sets), nginx, h2o,
evhttp (bin/http-evhttp), or the limit rows raw-epoll and raw-uring
(bin/http-raw_epoll, bin/http-raw_uring: hand-written hello servers, no
file row). Speaks the driver's protocol like any benchmark
program: `RESULT <row> <impl> <value> req/s` lines, `NA <row> <impl> <why>`
for a row an implementation does not have, `SKIP <why>` and exit 77 when
the implementation cannot run here, `FAILED: <why>` on stderr and exit 1
when a self-check fails.

Every server gets one thread. Before any load it must answer GET with 200
and the exact body, and answer 16 pipelined GETs with 16 such responses in
order; wrk must then report no socket error and no non-2xx response, and a
server that says what it served (soon, evhttp, raw-*) must have served at
least what wrk counted.

The server's CPU time per request (user + system, from /proc around each
wrk run) comes out as `CPU <row> <impl> <seconds> request <user seconds>`:
the driver shows the total, and the user part beside it.
"""
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = b"hello, world!"
FILE_SIZE = 1 << 20
HELLO_PATH = "/hello"
FILE_PATH = "/file-1m.bin"
START_TIMEOUT = 10.0  # seconds for a server to listen
STOP_TIMEOUT = 10.0  # seconds for it to exit after SIGTERM
# The head of the smallest response anyone sends is well over this: a
# floor for wrk's byte count, so a server sending empty bodies fails.
MIN_HEAD = 38


class Skip(Exception):
    pass


class Failure(Exception):
    pass


def opts_from(argv):
    o = {}
    for a in argv:
        k, sep, v = a.partition("=")
        if not sep:
            raise Failure(f"argument {a!r} is not name=value")
        o[k] = v
    for k in ("impl", "bin"):
        if k not in o:
            raise Failure(f"missing {k}=")
    o["bin"] = os.path.abspath(o["bin"])  # the servers' configs need whole paths
    return o


def file_bytes():
    """The 1 MiB file's bytes: the benchmark pattern (byte i is i % 251)."""
    return bytes(i % 251 for i in range(251)) * (FILE_SIZE // 251) + bytes(
        i % 251 for i in range(FILE_SIZE % 251))


def make_root(root):
    """The document root the servers share: hello.txt and file-1m.bin,
    written once and checked by size (the servers' answers are checked
    against the same bytes)."""
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)  # nginx's worker runs as nobody
    for name, data in (("hello.txt", BODY), ("file-1m.bin", file_bytes())):
        path = os.path.join(root, name)
        if not os.path.exists(path) or os.path.getsize(path) != len(data):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        os.chmod(path, 0o644)
    return root


def free_port():
    """A port nobody listens on now, for the servers configured by file.
    Another process could take it before the server binds: the start then
    fails loudly, it cannot measure the wrong server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template, dest, values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    if "@" in re.sub(r"#.*", "", text):
        raise Failure(f"{template}: a placeholder left unfilled")
    with open(dest, "w") as f:
        f.write(text)
    return dest


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
        return " | ".join(lines[-n:])
    except OSError:
        return ""


class Server:
    """A server process in its own session (so a stuck one is killed with
    its children), logging to a file; port once it listens. wrap is a
    command to run it under (strace, valgrind: bench/http/profile.py)."""

    def __init__(self, name, cmd, workdir, env=None, wrap=()):
        self.name, self.cmd, self.env = name, list(wrap) + cmd, env
        self.strace = bool(wrap) and os.path.basename(wrap[0]) == "strace"
        self.log = os.path.join(workdir, f"{name}.log")
        self.proc = None
        self.port = None
        self.served = None
        # Under valgrind a server starts and stops many times slower.
        self.start_timeout = START_TIMEOUT * (6 if wrap else 1)
        self.stop_timeout = STOP_TIMEOUT * (6 if wrap else 1)

    def exited_early(self):
        out = self.proc.stdout.read() if self.proc.stdout else ""
        if self.proc.returncode == 77:
            why = next((l[5:] for l in out.splitlines() if l.startswith("SKIP ")),
                       "not available here")
            raise Skip(why)
        raise Failure(f"{self.name} exited with {self.proc.returncode} before listening: "
                      f"{tail(self.log)}")

    def server_pid(self):
        """The server's own pid: under strace, strace's child (a SIGTERM to
        strace would detach it instead of stopping it); valgrind runs the
        program in its own process."""
        if not self.strace:
            return self.proc.pid
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def output(self):
        return ""

    def stop(self):
        """SIGTERM, as an operator stops it; it must exit by itself."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.server_pid(), signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise Failure(f"{self.name} did not stop within {self.stop_timeout:.0f} s "
                          "of SIGTERM")
        m = re.search(r"^SERVED (\d+)", self.output(), re.M)
        if m:
            self.served = int(m.group(1))
        if self.proc.returncode not in (0, -signal.SIGTERM):
            raise Failure(f"{self.name} exited with {self.proc.returncode} on SIGTERM: "
                          f"{tail(self.log)}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class ProgramServer(Server):
    """Ours (soon, evhttp, raw-*, soon-serve): picks its own port and says which
    on its first line, `listening on http://ADDR:PORT/`."""

    def start(self):
        log = open(self.log, "w")
        try:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                         stderr=log, text=True, start_new_session=True)
        except FileNotFoundError:
            raise Failure(f"{self.cmd[0]} not built") from None
        finally:
            log.close()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                self.exited_early()
            m = re.search(r"listening on http://[^ ]*:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                # The rest of its output is read as it comes, so a chatty
                # server never blocks on a full pipe.
                self.lines = []
                self.reader = threading.Thread(target=self.lines.extend,
                                               args=(self.proc.stdout,), daemon=True)
                self.reader.start()
                return
            if line.startswith("SKIP "):
                self.proc.wait()
                raise Skip(line[5:].strip())
        self.kill()
        raise Failure(f"{self.name} did not say where it listens within "
                      f"{self.start_timeout:.0f} s")

    def output(self):
        self.reader.join()
        return "".join(self.lines)


class ConfiguredServer(Server):
    """nginx and h2o: the port goes into their config; listening once a
    connect succeeds."""

    def start(self):
        log = open(self.log, "w")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exited_early()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)  # polling a start-up, not synchronising a test
        self.kill()
        raise Failure(f"{self.name} not listening on {self.port} within "
                      f"{self.start_timeout:.0f} s: {tail(self.log)}")


def servers_for(impl, o, root, workdir, wrap=()):
    """(server for the hello rows, server for the file row or None)."""
    binary = o["bin"]
    if impl.startswith("soon"):
        hello = ProgramServer("http-soon", [os.path.join(binary, "http-soon")], workdir,
                              wrap=wrap)
        serve = os.path.join(binary, "soon-serve")
        if not os.path.exists(serve):
            raise Failure(f"{serve} not built")
        file = ProgramServer("soon-serve", [serve, "--root", root, "--bind", "127.0.0.1",
                                            "--port", "0", "--threads", "1", "--quiet"],
                             workdir, wrap=wrap)
        return hello, file
    if impl in ("evhttp", "raw-epoll", "raw-uring"):
        prog = "http-" + impl.replace("-", "_")
        return ProgramServer(prog, [os.path.join(binary, prog)], workdir, wrap=wrap), None
    if impl in ("nginx", "h2o"):
        exe = {"nginx": "/usr/sbin/nginx", "h2o": "/usr/bin/h2o"}[impl]
        if not os.path.exists(exe):
            raise Skip(f"{exe} not installed (bench/run installs it)")
        port = free_port()
        conf = render(os.path.join(HERE, f"{impl}.conf"),
                      os.path.join(workdir, f"{impl}.conf"),
                      dict(PORT=port, ROOT=root, PREFIX=workdir))
        if impl == "nginx":
            cmd = [exe, "-p", workdir + "/", "-c", conf, "-e", os.path.join(workdir, "error.log")]
            if wrap:  # profiled: the worker's work in one process, which stays root
                cmd += ["-g", "master_process off;"]
        else:
            cmd = [exe, "-c", conf]
        s = ConfiguredServer(impl, cmd, workdir, wrap=wrap)
        s.port = port
        return s, s  # one server, both rows
    raise Failure(f"unknown implementation {impl}")


def read_response(sock, buf):
    """One response from sock (buf: bytes already read): (status, body,
    the bytes after it). Content-Length framing only: every server here
    knows its lengths, so chunked is a failure too."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise Failure(f"connection closed mid-head after {len(buf)} bytes")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    if not m:
        raise Failure(f"bad status line {lines[0]!r}")
    length = None
    for l in lines[1:]:
        name, _, value = l.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise Failure(f"response without Content-Length: {lines!r}")
    while len(buf) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise Failure(f"connection closed mid-body ({len(buf)} of {length})")
        buf += chunk
    return int(m.group(1)), buf[:length], buf[length:]


def check(port, path, want, pipelined):
    """GET path answers 200 with want; then `pipelined` GETs sent in one
    write answer as many such responses, in order, and nothing more."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for n in (1, pipelined):
            s.sendall(req * n)
            buf = b""
            for i in range(n):
                status, body, buf = read_response(s, buf)
                if status != 200 or body != want:
                    shown = body[:40] + (b"..." if len(body) > 40 else b"")
                    raise Failure(f"GET {path} ({i + 1} of {n}): {status}, "
                                  f"{len(body)}-byte body {shown!r}")
            if buf:
                raise Failure(f"GET {path}: {len(buf)} bytes after {n} responses")


def wrk(o, port, path, depth, min_size):
    """wrk against path: requests per second, after wrk's own checks."""
    duration = int(float(o.get("duration", "3")))
    cmd = ["wrk", f"-t{o.get('threads', '2')}", f"-c{o.get('conns', '50')}",
           f"-d{max(duration, 1)}s", "-s", os.path.join(HERE, "pipeline.lua"),
           f"http://127.0.0.1:{port}{path}", "--", str(depth)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    except FileNotFoundError:
        raise Skip("wrk not installed (bench/run installs it)")
    except subprocess.TimeoutExpired:
        raise Failure(f"wrk did not finish: {' '.join(cmd)}")
    m = re.search(r"^WRK (.*)$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise Failure(f"wrk exit {p.returncode}: {(p.stderr or p.stdout).strip()[-200:]}")
    r = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
    errors = {k: r[k] for k in ("connect", "read", "write", "timeout", "status") if r[k]}
    if errors:
        raise Failure(f"wrk {path} depth {depth}: errors {errors} "
                      f"in {r['requests']} requests")
    if r["requests"] == 0 or r["bytes"] < r["requests"] * min_size:
        raise Failure(f"wrk {path} depth {depth}: {r['requests']} responses, "
                      f"{r['bytes']} bytes")
    return r["requests"], r["requests"] / (r["duration_us"] / 1e6)


def tree_cpu_s(pid):
    """(user, system) seconds of pid and its descendants (nginx's and h2o's
    workers), from /proc; 0 for processes gone meanwhile."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    # after the ")" of the command name: state ppid ... field 14, 15
                    rest = f.read().rsplit(")", 1)[1].split()
                procs[int(d)] = (int(rest[1]), int(rest[11]), int(rest[12]))
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {pid}, True
    while grew:
        grew = False
        for p, (ppid, _, _) in procs.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    hz = os.sysconf("SC_CLK_TCK")
    return tuple(sum(procs[p][k] for p in tree if p in procs) / hz for k in (1, 2))


def wrk_cpu(o, server, path, depth, min_size, row, cpu):
    """wrk as below, and the server's CPU seconds per request into cpu:
    (row, user + system, user)."""
    u0, s0 = tree_cpu_s(server.server_pid())
    n, rate = wrk(o, server.port, path, depth, min_size)
    u1, s1 = tree_cpu_s(server.server_pid())
    cpu.append((row, (u1 - u0 + s1 - s0) / n, (u1 - u0) / n))
    return n, rate


def run(o):
    impl = o["impl"]
    depth = int(o.get("depth", "16"))
    data = os.path.join(o["bin"], os.pardir, "data")
    root = make_root(os.path.join(data, "http-root"))
    runs = os.path.join(data, "http-run")
    os.makedirs(runs, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"{impl}-", dir=runs)
    os.chmod(workdir, 0o755)
    try:
        cpu = []
        results = load(impl, o, root, workdir, depth, cpu)
    except Failure as e:
        if os.listdir(workdir):  # kept only when something failed, for its logs
            raise Failure(f"{e} (logs in {workdir})") from None
        os.rmdir(workdir)
        raise
    except Skip:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    for row, value in results:
        print(f"RESULT {row} {impl} {value:.6g} req/s")
    for row, per_request, user in cpu:  # the server's CPU time, not wrk's
        print(f"CPU {row} {impl} {per_request:.6g} request {user:.6g}")
    if not any(row == "http-file" for row, _ in results):
        print(f"NA http-file {impl} no static-file server in this program")


def load(impl, o, root, workdir, depth, cpu):
    """Each server of impl started, checked, loaded and stopped in turn:
    [(row, req/s)], and [(row, server CPU seconds per request, user part)]
    into cpu."""
    hello, file = servers_for(impl, o, root, workdir)
    results = []
    try:
        hello.start()
        check(hello.port, HELLO_PATH, BODY, 16)
        n1, plain = wrk_cpu(o, hello, HELLO_PATH, 1, MIN_HEAD + len(BODY), "http", cpu)
        n2, piped = wrk_cpu(o, hello, HELLO_PATH, depth, MIN_HEAD + len(BODY),
                            "http-pipelined", cpu)
        results += [("http", plain), ("http-pipelined", piped)]
        if file is not hello:
            hello.stop()
            # Every request wrk counted went through the server's handler.
            if hello.served is not None and hello.served < n1 + n2:
                raise Failure(f"{hello.name} served {hello.served}, wrk counted {n1 + n2}")
        if file is not None:
            if file is not hello:
                file.start()
            check(file.port, FILE_PATH, file_bytes(), 2)
            _, rate = wrk_cpu(o, file, FILE_PATH, 1, FILE_SIZE, "http-file", cpu)
            results.append(("http-file", rate))
            file.stop()
    finally:
        for s in (hello, file):
            if s is not None:
                s.kill()
    return results


def main():
    try:
        run(opts_from(sys.argv[1:]))
    except Skip as e:
        print(f"SKIP {e}", flush=True)
        return 77
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
