#!/usr/bin/env python3
# bench/http/profile.py: where an HTTP server's time goes under wrk, for tuning soon's server:
# system calls per request (strace -c -f) and instructions per request (callgrind), per server.
"""Usage: profile.py [bin=DIR] [impls=soon,nginx,h2o,evhttp] [cases=hello-1,hello-16,file-1]
                     [seconds=3] [top=25] [keep=DIR]

bin: the benchmark programs (default build/bench/bin; bench/run builds
them). soon runs on $SOON_BACKEND (default epoll). A case is a row of the
http workload and a pipelining depth: hello-16 is the 13-byte response, 16
requests a write; file-1 the 1 MiB file (soon-serve for soon). Each server
is started as bench/http/launch.py starts it (same configs, one thread;
nginx without its master process, so one process does the work), twice per
case, once under `strace -c -f` and once under callgrind, and loaded by wrk
(2 threads, 50 connections) for `seconds`:

- syscalls per request: strace's call counts over wrk's completed requests
  (strace slows the server, not the number of calls a request takes);
- Ir per request: callgrind's counters zeroed once the server listens and
  dumped when wrk ends (callgrind_control), over wrk's requests, so start-up
  and shutdown are not in it; soon's functions by self Ir follow the table.
  keep=DIR keeps the callgrind files (callgrind_annotate --inclusive=yes).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launch  # noqa: E402  (the same servers, configs and wrk as the benchmark)


def session_pids(sid):
    """The processes of a server's session: nginx's master and worker, or
    the one process of the others (valgrind runs the program in place)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # field 6 of stat, the session id
                pids.append(int(d))
    return pids


def callgrind_control(flag, pids):
    """flag (-z, -d) to each of pids that valgrind runs: a helper a server
    forks and execs (h2o does at start-up) is not under callgrind."""
    pids = [p for p in pids if under_valgrind(p)]
    if not pids:
        raise launch.Failure("no process of the server runs under valgrind")
    for pid in pids:
        p = subprocess.run(["callgrind_control", flag, str(pid)], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 0 or "OK" not in p.stdout:
            raise launch.Failure(f"callgrind_control {flag} {pid}: {p.stdout}{p.stderr}")


def under_valgrind(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"valgrind" in f.read().split(b"\0")[0]
    except OSError:
        return False


def parse_strace(path):
    """{syscall: calls} from strace -c's table."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]) and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    return calls


def totals(files):
    total = 0
    for name in files:
        with open(name) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def start(impl, o, root, workdir, wrap, row):
    """impl's server for row under wrap, listening and checked."""
    hello, file = launch.servers_for(impl, o, root, workdir, wrap=wrap)
    server = hello if row == "hello" else file
    if server is None:
        return None
    if server is not hello:
        hello.kill()
    try:
        server.start()
        path, body = ROWS[row]
        launch.check(server.port, path, body(), 2)
        return server
    except Exception:
        server.kill()
        raise


# row: (path, the body it answers)
ROWS = {"hello": (launch.HELLO_PATH, lambda: launch.BODY),
        "file": (launch.FILE_PATH, launch.file_bytes)}


def wrk_requests(o, port, row, depth):
    """wrk's completed requests; under strace or valgrind, timeouts are not
    the server's fault, so they are not failures here."""
    duration = int(o.get("seconds", "3"))
    cmd = ["wrk", "-t2", "-c50", f"-d{duration}s", "--timeout", "30s", "-s",
           os.path.join(launch.HERE, "pipeline.lua"),
           f"http://127.0.0.1:{port}{ROWS[row][0]}", "--", str(depth)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    m = re.search(r"requests=(\d+)", p.stdout)
    if p.returncode != 0 or not m or int(m.group(1)) == 0:
        raise launch.Failure(f"wrk: {p.stderr.strip()[-200:]} {p.stdout.strip()[-200:]}")
    return int(m.group(1))


def strace_case(impl, o, root, workdir, row, depth):
    """(wrk's requests, {syscall: calls}), or None if impl has no such row."""
    out = os.path.join(workdir, f"strace-{impl}-{row}-{depth}.txt")
    server = start(impl, o, root, workdir, ["strace", "-c", "-f", "-o", out], row)
    if server is None:
        return None
    try:
        n = wrk_requests(o, server.port, row, depth)
        server.stop()
    finally:
        server.kill()
    return n, parse_strace(out)


def callgrind_case(impl, o, root, workdir, row, depth):
    """(wrk's requests, Ir in all, the dump files)."""
    cgdir = tempfile.mkdtemp(prefix=f"cg-{impl}-{row}-{depth}-", dir=workdir)
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cgdir}/cg.%p.out"]
    server = start(impl, o, root, workdir, wrap, row)
    try:
        pids = session_pids(server.proc.pid)
        callgrind_control("-z", pids)
        n = wrk_requests(o, server.port, row, depth)
        callgrind_control("-d", pids)
        server.stop()
    finally:
        server.kill()
    dumps = [os.path.join(cgdir, f) for f in os.listdir(cgdir) if re.search(r"\.out\.\d+$", f)]
    if not dumps:
        raise launch.Failure(f"no callgrind dump in {cgdir}")
    return n, totals(dumps), dumps


def self_costs(dumps):
    """{function: self Ir} summed over callgrind files. Read here rather
    than with callgrind_annotate, which (3.19) books a dump taken while
    main is on the stack as main's own cost."""
    cost, names = {}, {}
    for path in dumps:
        fn, after_call = None, False
        with open(path) as f:
            for line in f:
                m = re.match(r"^(c?)fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
                if m:
                    if m.group(3):
                        names[m.group(2)] = m.group(3)
                    if not m.group(1):
                        fn, after_call = m.group(2), False
                    continue
                if line.startswith("calls="):
                    after_call = True  # the next cost line is the call's, inclusive
                    continue
                m = re.match(r"^([+-]?\d+|\*) (\d+)$", line.rstrip("\n"))
                if m and fn is not None:
                    if after_call:
                        after_call = False
                    else:
                        cost[fn] = cost.get(fn, 0) + int(m.group(2))
    return {names.get(k, k): v for k, v in cost.items()}


def main():
    o = launch.opts_from(["impl=-", "bin=build/bench/bin"] + sys.argv[1:])
    os.environ.setdefault("SOON_BACKEND", "epoll")
    impls = o.get("impls", "soon,nginx,h2o,evhttp").split(",")
    cases = [(c.split("-")[0], int(c.split("-")[1]))
             for c in o.get("cases", "hello-1,hello-16,file-1").split(",")]
    top = int(o.get("top", "25"))
    for tool in ("wrk", "strace", "valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"profile: {tool} not found")
    data = os.path.join(o["bin"], os.pardir, "data")
    root = launch.make_root(os.path.join(data, "http-root"))
    workdir = tempfile.mkdtemp(prefix="http-profile-", dir=data)
    os.chmod(workdir, 0o755)

    rows, annotated = [], []
    for row, depth in cases:
        for impl in impls:
            name = f"soon-{os.environ['SOON_BACKEND']}" if impl == "soon" else impl
            st = strace_case(impl, o, root, workdir, row, depth)
            if st is None:
                continue  # evhttp serves no file
            n, calls = st
            per = {k: v / n for k, v in calls.items()}
            busiest = sorted(per.items(), key=lambda kv: -kv[1])[:5]
            cn, ir, dumps = callgrind_case(impl, o, root, workdir, row, depth)
            rows.append(f"| {row}-{depth} | {name} | {sum(per.values()):.2f} | "
                        + ", ".join(f"{k} {v:.2f}" for k, v in busiest)
                        + f" | {ir / cn:,.0f} | {n:,} / {cn:,} |")
            print(f"[profile] {row}-{depth} {name}: {sum(per.values()):.2f} syscalls, "
                  f"{ir / cn:,.0f} Ir per request", file=sys.stderr, flush=True)
            if impl == "soon":
                annotated.append((f"{row}-{depth}", cn, self_costs(dumps)))
            if "keep" in o:
                os.makedirs(o["keep"], exist_ok=True)
                for d in dumps:
                    shutil.copy(d, os.path.join(o["keep"], f"{name}-{row}-{depth}-"
                                                + os.path.basename(d)))

    print("| case | server | syscalls / request | busiest (per request) | "
          "Ir / request | requests (strace / callgrind) |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    for case, n, costs in annotated:
        total = sum(costs.values())
        print(f"\nsoon, {case}: functions by self Ir per request ({total / n:,.0f} in all)\n")
        print("| function | Ir / request | share |")
        print("| --- | --- | --- |")
        for name, ir in sorted(costs.items(), key=lambda kv: -kv[1])[:top]:
            print(f"| {name} | {ir / n:,.1f} | {100 * ir / total:.1f}% |")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except launch.Failure as e:
        sys.exit(f"profile: FAILED: {e}")
