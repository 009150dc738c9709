#!/usr/bin/env python3
# bench/driver.py: runs every benchmark program (bench/run builds them), alternating implementations
# A B C A B C ... so machine drift hits all alike; writes the markdown table, the chart and callgrind counts.
"""Usage: driver.py --bin DIR [--quick|--full] [--out DIR] [--no-callgrind] [workload ...]

Each program prints `RESULT <workload> <impl> <value> <unit>` lines; exit 77
with a `SKIP <reason>` line means n/a here, any other nonzero exit is a
self-check failure: the row says FAILED and the driver exits 1. A workload
with a launcher (http: servers loaded by wrk) runs the launcher script once
per implementation instead, with impl=<name> and bin=<dir>, same protocol.

Limit rows: pingpong also runs bench/pingpong/raw_{epoll,uring}.c, the same
workload hand-written on epoll and on a bare io_uring (no library), as
implementations "raw-epoll" and "raw-uring"; http runs the hello servers
bench/http/raw_{epoll,uring}.c the same way. They are not peers: "best peer"
ignores them; soon is compared with the better of the two in a table of its
own ("soon against the limit"; http's has nginx against the limit too).

CPU time: for the workloads that run in one thread (not async, pool, files,
nor the launchers, whose server is another process), the driver takes the
user + system CPU time of each run from the child's rusage
(RUSAGE_CHILDREN before and after; a program's forked children, waited for,
count too) and divides it by the run's operations, which it derives from the
RESULT value: rate x duration for rates, the n= or iters= it passed for
counts (see "cpu" in workloads()). It covers the whole process, set-up
included, so it is for comparing implementations within a row. A launcher
may print `CPU <row> <impl> <seconds per operation> <operation> [<user
seconds per operation>]` lines: its server's own CPU time (the http
launcher reads it from /proc around each wrk run), shown in the same
column, with the user-space part in brackets when given.

Noise: a row whose min-max reaches more than 15 % of its median away from
the median, on either side, is marked "(noisy)"; soon is "within noise" of
a peer when either median lies inside the other's min-max, whatever the
ratio says.

Repetitions: in full mode a workload whose every run of the first turn took
under 0.5 s wall time gets 9 turns instead of 5 (cheap, and the medians
steadier); quick mode keeps 3.
"""
import argparse
import datetime
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# soon runs once per backend; adding io_uring is one word here.
BACKENDS = ["select", "poll", "epoll", "uring"]
# (program suffix, name in the report): the event libraries, which every
# workload is compared with unless it names its own peers, and the HTTP
# parsers, for the parse workload.
PEERS = [("uv", "libuv"), ("event", "libevent"), ("ev", "libev"),
         ("llhttp", "llhttp"), ("http_parser", "http_parser")]
# The HTTP servers of the http workload, which its launcher starts.
HTTP_PEERS = ["nginx", "h2o", "evhttp"]
# The HTTP clients of the http-client workload (bench/http-client/curl.c).
CLIENT_PEERS = ["libcurl"]
PEER_NAMES = [p[1] for p in PEERS] + HTTP_PEERS + CLIENT_PEERS
LOOP_PEERS = ["libuv", "libevent", "libev"]
# The limit rows (program suffix, name): hand-written loops on the same
# workload, no library; never peers. soon's target is the better of them.
LIMITS = [("raw_epoll", "raw-epoll"), ("raw_uring", "raw-uring")]
LIMIT_NAMES = [x[1] for x in LIMITS]
LIMIT_TARGET = 0.97
# A row is noisy when min or max lies further than this from its median.
NOISE = 0.15

# Units where a bigger number is better; all others (times, sizes) are
# better smaller.
HIGHER_IS_BETTER = {"rt/s", "Gbit/s", "accepts/s", "items/s", "files/s", "iter/s",
                    "req/s", "GB/s"}

MODES = {
    # quick: CI and a first look, about a minute; full: the numbers for docs/.
    # http: wrk runs whole seconds, three loads per turn, so quick mode
    # gives each server one turn of 1 s loads: a smoke test, not a number.
    "quick": dict(reps=3, duration=0.2, timers=100_000, chain_iters=3,
                  pool=100_000, files=2_000, loop=200_000, timeout=60,
                  http_reps=1, http_duration=1, cheap_reps=3, cheap_s=0),
    "full": dict(reps=5, duration=1.0, timers=1_000_000, chain_iters=25,
                 pool=1_000_000, files=10_000, loop=2_000_000, timeout=180,
                 http_reps=5, http_duration=3, cheap_reps=9, cheap_s=0.5),
}

NO_POOL = "no thread pool in this library"
NO_FS = "no file API in this library"


def workloads(m):
    d = f"duration={m['duration']}"
    # cpu: (operation's name, operations of a run from its RESULT value), for
    # the CPU time per operation of single-threaded workloads.
    round_trips = ("rt", lambda v: v * m["duration"])
    buf64k = ("64 KiB", lambda v: v * 1e9 / 8 * m["duration"] / 65536)
    chain_iters = ("iter", lambda v: m["chain_iters"])
    w = [
        dict(name="pingpong-1", prog="pingpong", args=["conns=1", d], limits=LIMIT_NAMES,
             cpu=round_trips, what="TCP ping-pong, 1 connection (5-byte message, loopback)"),
        dict(name="pingpong-100", prog="pingpong", args=["conns=100", d], limits=LIMIT_NAMES,
             cpu=round_trips, what="TCP ping-pong, 100 connections, one ping in flight each"),
        dict(name="pump-1", prog="pump", args=["conns=1", d], cpu=buf64k,
             what="bulk TCP, 1 connection writing 64 KiB buffers"),
        dict(name="pump-100", prog="pump", args=["conns=100", d], cpu=buf64k,
             what="bulk TCP, 100 connections writing 64 KiB buffers"),
        dict(name="pound-100", prog="pound", args=["conns=100", d],
             cpu=("accept", lambda v: v * m["duration"]),
             what="connect + accept + close churn, 100 concurrent"),
        dict(name="timers", prog="timers", args=[f"n={m['timers']}"],
             results=["timers", "timers-rss"], cpu=("timer", lambda v: m["timers"]),
             what=f"{m['timers']:,} timers: start, fire, close (CPU time)"),
        dict(name="chain-100", prog="chain", cpu=chain_iters,
             args=["n=100", "active=100", "writes=1000", f"iters={m['chain_iters']}"],
             what="socketpair chain (libevent bench.c), 100 fds, 100 active"),
        dict(name="chain-1000", prog="chain", cpu=chain_iters,
             args=["n=1000", "active=100", "writes=1000", f"iters={m['chain_iters']}"],
             what="socketpair chain, 1,000 fds, 100 active"),
        dict(name="chain-10000", prog="chain", cpu=chain_iters,
             args=["n=10000", "active=100", "writes=1000", f"iters={m['chain_iters']}"],
             what="socketpair chain, 10,000 fds, 100 active"),
        dict(name="async-1", prog="async", args=["threads=1", d],
             what="async handle ping-pong with 1 thread"),
        dict(name="async-8", prog="async", args=["threads=8", d],
             what="async handle ping-pong with 8 threads"),
        dict(name="pool", prog="pool", args=[f"n={m['pool']}"],
             peers=["libuv"], na={"libevent": NO_POOL, "libev": NO_POOL},
             what=f"{m['pool']:,} no-op work items, submit to after-callback"),
        dict(name="files", prog="files", args=[f"n={m['files']}"],
             peers=["libuv"], na={"libevent": NO_FS, "libev": NO_FS}, files=m["files"],
             what=f"{m['files']:,} files of 4 KiB: open + read + close"),
        dict(name="loop", prog="loop", args=[f"iterations={m['loop']}"],
             cpu=("iter", lambda v: m["loop"]),
             what="empty loop iterations (idle handle, one fd watched)"),
        dict(name="sizes", prog="sizes", args=[], once=True,
             results=["sizeof-timer", "sizeof-tcp", "sizeof-io", "sizeof-udp",
                      "sizeof-process", "sizeof-fs-req", "sizeof-write-req"],
             what="bytes per handle or request the caller embeds"),
        # No loop: soon runs once, not per backend.
        dict(name="parse", prog="parse", args=[d], loopless=True,
             cpu=("request", lambda v: v * m["duration"]),
             results=["parse", "parse-bytes"], peers=["llhttp", "http_parser"],
             what="HTTP/1.1 requests parsed: a browser GET, a POST, 16 pipelined GETs"),
        # Servers on 127.0.0.1 loaded by wrk (2 threads, 50 connections),
        # one server thread each; bench/http/launch.py starts, checks and
        # stops them. soon's file row is soon-serve.
        dict(name="http", launcher="http/launch.py", reps=m["http_reps"],
             args=[f"duration={m['http_duration']}", "threads=2", "conns=50", "depth=16"],
             results=["http", "http-pipelined", "http-file"], peers=list(HTTP_PEERS),
             limits=LIMIT_NAMES,
             what="HTTP/1.1 server under wrk (2 threads, 50 connections): 13-byte "
                  "response; the same 16 pipelined; a 1 MiB static file"),
        # Clients against one nginx (bench/http/nginx.conf's hello), which
        # bench/http-client/launch.py starts anew for each turn, as http does.
        dict(name="http-client", launcher="http-client/launch.py", reps=m["http_reps"],
             args=[d, "conns=16,1"], results=["http-client-16", "http-client-1"],
             peers=list(CLIENT_PEERS),
             what="HTTP/1.1 client: keep-alive GETs of nginx's 13-byte hello, 16 (or 1) "
                  "in flight, each response checked"),
    ]
    for x in w:
        x.setdefault("results", [x["name"]])
        x.setdefault("peers", list(LOOP_PEERS))
        x.setdefault("na", {})
        x.setdefault("limits", [])
    return w


class Row:
    def __init__(self):
        self.values = []
        self.unit = ""
        self.status = "ok"  # ok | na | failed
        self.note = ""
        self.cpu = []  # CPU seconds per operation, one per run (workloads with "cpu")
        self.user = []  # their user-space part, where the launcher tells it
        self.op = ""  # what one operation is, for the CPU column


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fmt_s(s):
    """A short time: 12.3 µs, 85 ns, 1.20 ms."""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale:
            return f"{fmt(s / scale)} {unit}"
    return f"{fmt(s * 1e9)} ns"


def cpu_cell(row, k=None):
    """The CPU column: run k's CPU per operation (the median if k is None),
    and its user-space part in brackets where known: "8.7 µs/request (user 1.1 µs)"."""
    pick = statistics.median if k is None else (lambda xs: xs[k])
    text = f"{fmt_s(pick(row.cpu))}/{row.op}"
    if row.user and len(row.user) == len(row.cpu):
        text += f" (user {fmt_s(pick(row.user))})"
    return text


def noisy(values, med):
    """min or max further than NOISE from the median: see the docstring."""
    return max(med - min(values), max(values) - med) > NOISE * abs(med)


def within_noise(a, b):
    """Either median inside the other's min-max: the difference between the
    two is no larger than what each does run to run."""
    ma, mb = statistics.median(a), statistics.median(b)
    return min(b) <= ma <= max(b) or min(a) <= mb <= max(a)


def fmt(v):
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}G"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def make_files(root, n):
    """The files workload reads what the driver makes once: n files of 4 KiB,
    file i filled with the byte i % 251 (the programs check it)."""
    d = os.path.join(root, f"files-{n}")
    mark = os.path.join(d, ".complete")
    if os.path.exists(mark):
        return d
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
            f.write(bytes([i % 251]) * 4096)
    open(mark, "w").close()
    return d


def children_cpu_s():
    """User + system seconds of this process's children that have ended and
    been waited for (theirs too). The driver runs one child at a time, so
    the difference around a run is that run's."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_prog(cmd, args, env, timeout):
    """cmd: the program's path, or a list (a launcher and its first
    arguments). Returns (results, skip_reason, na_lines, failure); the run's
    CPU seconds and wall seconds are in run_prog.cpu_s and run_prog.wall_s."""
    if isinstance(cmd, str):
        cmd = [cmd]
    cpu0, t0 = children_cpu_s(), time.monotonic()
    try:
        p = subprocess.run(cmd + args, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], None, [], f"timed out after {timeout} s"
    finally:
        run_prog.cpu_s = children_cpu_s() - cpu0
        run_prog.wall_s = time.monotonic() - t0
    results, na, skip = [], [], None
    run_prog.cpu_lines = []
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "RESULT":
            results.append((f[1], f[2], float(f[3]), f[4]))
        elif len(f) >= 5 and f[0] == "CPU":
            user = float(f[5]) if len(f) >= 6 else None
            run_prog.cpu_lines.append((f[1], float(f[3]), f[4], user))
        elif f and f[0] == "SKIP":
            skip = line[5:].strip()
        elif len(f) >= 3 and f[0] == "NA":
            na.append((f[1], f[2], " ".join(f[3:])))
    if p.returncode == 77:
        return [], skip or "not available here", na, None
    if p.returncode != 0:
        err = [l for l in p.stderr.splitlines() if l.strip()]
        why = next((l for l in reversed(err) if "FAILED" in l), err[-1] if err else "")
        sig = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        return [], None, na, f"{sig}: {why}".strip()
    if not results and not na:
        return [], None, na, "printed no RESULT line"
    return results, None, na, None


def run_all(args, mode):
    m = MODES[mode]
    ws = workloads(m)
    if args.workloads:
        unknown = set(args.workloads) - {w["name"] for w in ws}
        if unknown:
            sys.exit(f"unknown workload(s): {' '.join(sorted(unknown))}")
        ws = [w for w in ws if w["name"] in args.workloads]
    rows = {}  # (result name, impl) -> Row
    base_env = dict(os.environ, SOON_THREADPOOL_SIZE="4", UV_THREADPOOL_SIZE="4")
    base_env.pop("SOON_BACKEND", None)
    data_root = os.path.join(args.bin, os.pardir, "data")

    for w in ws:
        # The implementations of this workload, in the order they alternate.
        impls = []
        per_backend = not (w.get("once") or w.get("loopless"))
        soon_names = [f"soon-{b}" for b in BACKENDS] if per_backend else ["soon"]
        launcher = w.get("launcher")
        if launcher:
            launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), launcher)

        def command(name, suffix):
            if launcher:
                return [sys.executable, launcher, f"impl={name}", f"bin={args.bin}"]
            return os.path.join(args.bin, f"{w['prog']}-{suffix}")

        for i, name in enumerate(soon_names):
            env = dict(base_env)
            if per_backend:
                env["SOON_BACKEND"] = BACKENDS[i]
            impls.append((name, command(name, "soon"), env))
        if launcher:
            impls += [(name, command(name, None), base_env) for name in w["peers"]]
        for suffix, name in PEERS:
            if name in w["peers"] and not launcher:
                impls.append((name, command(name, suffix), base_env))
        for suffix, name in LIMITS:
            if name in w["limits"]:
                impls.append((name, command(name, suffix), base_env))
        for r in w["results"]:
            for name, _, _ in impls:
                rows[(r, name)] = Row()
            for peer, why in w["na"].items():
                row = rows[(r, peer)] = Row()
                row.status, row.note = "na", why

        wargs = list(w["args"])
        if "files" in w:
            wargs.append("dir=" + make_files(data_root, w["files"]))
        reps = 1 if w.get("once") else w.get("reps", m["reps"])
        rep = 0
        while rep < reps:
            slowest = 0.0
            for name, path, env in impls:
                first = rows[(w["results"][0], name)]
                if first.status != "ok":
                    continue  # n/a or failed once: no more repetitions
                # bench/run builds every program (a launcher's command is a list)
                if isinstance(path, str) and not os.path.exists(path):
                    for r in w["results"]:
                        rows[(r, name)].status = "failed"
                        rows[(r, name)].note = "program not built"
                    log(f"[{w['name']}] {name}: FAILED (program not built)")
                    continue
                results, skip, na, failure = run_prog(path, wargs, env, m["timeout"])
                slowest = max(slowest, run_prog.wall_s)
                for r, impl, why in na:
                    if (r, impl) in rows:
                        rows[(r, impl)].status, rows[(r, impl)].note = "na", why
                if skip is not None or failure is not None:
                    for r in w["results"]:
                        row = rows[(r, name)]
                        row.status = "na" if skip is not None else "failed"
                        row.note = skip if skip is not None else failure
                    log(f"[{w['name']}] {rep + 1}/{reps} {name}: "
                        + (f"n/a ({skip})" if skip is not None else f"FAILED ({failure})"))
                    continue
                shown = []
                for r, impl, value, unit in results:
                    # A soon program names its backend; trust the driver's label.
                    key = (r, name)
                    if key not in rows:
                        continue
                    rows[key].values.append(value)
                    rows[key].unit = unit
                    shown.append(f"{r}={fmt(value)} {unit}")
                    if "cpu" in w and r == w["results"][0] and value > 0:
                        op, ops = w["cpu"]
                        rows[key].cpu.append(run_prog.cpu_s / ops(value))
                        rows[key].op = op
                        shown.append(f"CPU {fmt_s(rows[key].cpu[-1])}/{op}")
                # A launcher measures its server's own CPU time per operation.
                for r, per_op, op, user in run_prog.cpu_lines:
                    if (r, name) in rows and per_op > 0:
                        rows[(r, name)].cpu.append(per_op)
                        rows[(r, name)].op = op
                        if user is not None:
                            rows[(r, name)].user.append(user)
                        shown.append(f"{r} CPU {cpu_cell(rows[(r, name)], -1)}")
                log(f"[{w['name']}] {rep + 1}/{reps} {name}: {', '.join(shown)} "
                    f"({run_prog.wall_s:.2f} s)")
            rep += 1
            # Cheap workloads (full mode): more turns for the same time.
            if rep == 1 and reps > 1 and not launcher and slowest < m["cheap_s"]:
                reps = max(reps, m["cheap_reps"])
        w["reps_run"] = reps
    return ws, rows


def summarise(ws, rows):
    """Table lines, chart panels, the list of rows where soon is not ahead,
    and the table of soon against the limit rows (None if none ran)."""
    table = ["| workload | implementation | median | min–max | CPU per op | soon / best peer |",
             "| --- | --- | --- | --- | --- | --- |"]
    panels, behind, limit = [], [], []
    for w in ws:
        for r in w["results"]:
            impls = [k[1] for k in rows if k[0] == r]
            unit = next((rows[(r, i)].unit for i in impls if rows[(r, i)].unit), "")
            hib = unit in HIGHER_IS_BETTER
            med = {i: statistics.median(rows[(r, i)].values) for i in impls
                   if rows[(r, i)].status == "ok" and rows[(r, i)].values}
            peers = {i: v for i, v in med.items() if i in PEER_NAMES}
            best_peer = None
            if peers:
                best_peer = (max if hib else min)(peers, key=peers.get)
            limits = {i: v for i, v in med.items() if i in LIMIT_NAMES}
            best_limit = (max if hib else min)(limits, key=limits.get) if limits else None
            arrow = "higher is better" if hib else "lower is better"
            for i in impls:
                row = rows[(r, i)]
                label = f"{r} ({unit}, {arrow})" if unit else r
                if row.status == "na":
                    table.append(f"| {label} | {i} | n/a | {row.note} | | |")
                    continue
                if row.status == "failed":
                    table.append(f"| {label} | {i} | **FAILED** | {row.note} | | |")
                    continue
                v = med[i]
                lo, hi = min(row.values), max(row.values)
                spread = f"{fmt(lo)}–{fmt(hi)}" + (" (noisy)" if noisy(row.values, v) else "")
                cpu = cpu_cell(row) if row.cpu else ""
                ratio = ""
                if i.startswith("soon") and best_peer:
                    q = v / peers[best_peer]
                    perf = q if hib else 1 / q
                    quiet = within_noise(row.values, rows[(r, best_peer)].values)
                    word = ("within noise of" if quiet else
                            "ahead of" if perf >= 1 else "behind")
                    ratio = f"{q:.2f} ({(perf - 1) * 100:+.0f}%, {word} {best_peer})"
                    if perf < 1:
                        behind.append((r, i, q, best_peer, (perf - 1) * 100, quiet))
                elif i == best_peer:
                    ratio = "best peer"
                elif i in LIMIT_NAMES:
                    ratio = "limit, not a peer" + (" (the better)" if i == best_limit else "")
                table.append(f"| {label} | {i} | {fmt(v)} | {spread} | {cpu} | {ratio} |")
                # http's limit rows have a table of their own (http_limits).
                if i.startswith("soon") and best_limit and w["name"] != "http":
                    limit.append(limit_line(r, i, rows, limits, best_limit, hib))
            # Chart: performance relative to the best peer (or, lacking one, to
            # the best of all), so a taller bar is always better.
            ref = peers.get(best_peer) if best_peer else None
            if ref is None and med:
                ref = (max if hib else min)(med.values())
            bars = []
            for i in impls:
                row = rows[(r, i)]
                if i in med and ref:
                    rel = med[i] / ref if hib else ref / med[i]
                    bars.append((i, rel, f"{rel:.2f}"))
                else:
                    bars.append((i, 0.0, "n/a" if row.status == "na" else "FAIL"))
            title = f"{r} (1.0 = {best_peer or 'best'}: {fmt(ref) if ref else '?'} {unit})"
            panels.append((title, bars))
    if limit:
        limit = ([f"| workload | implementation | median | "
                  + " | ".join(f"soon / {n}" for n in LIMIT_NAMES)
                  + f" | soon / better raw loop (target ≥ {LIMIT_TARGET}) |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in LIMIT_NAMES) + " | --- |"]
                 + limit)
    return table, panels, behind, limit or None


def limit_line(r, i, rows, limits, best_limit, hib):
    """One row of the limit table: soon's median over each raw loop's, and
    the verdict against the better one (within noise when the runs overlap)."""
    v = statistics.median(rows[(r, i)].values)
    cells = []
    for n in LIMIT_NAMES:
        cells.append(f"{v / limits[n]:.2f}" if n in limits else "n/a")
    q = v / limits[best_limit]
    perf = q if hib else 1 / q
    if perf >= LIMIT_TARGET:
        verdict = "meets it"
    elif within_noise(rows[(r, i)].values, rows[(r, best_limit)].values):
        verdict = "below, within noise"
    else:
        verdict = "**below**"
    return (f"| {r} | {i} | {fmt(v)} | " + " | ".join(cells)
            + f" | {q:.2f} ({best_limit}): {verdict} |")


COLORS = {"soon-select": "#9ecae1", "soon-poll": "#4292c6", "soon-epoll": "#08519c",
          "soon-uring": "#08306b", "soon": "#08519c", "libuv": "#f28e2b",
          "libevent": "#59a14f", "libev": "#9c9c9c", "llhttp": "#e15759",
          "http_parser": "#b07aa1", "nginx": "#e15759", "h2o": "#76b7b2",
          "evhttp": "#59a14f", "libcurl": "#f28e2b", "raw-epoll": "#f1e2cc",
          "raw-uring": "#d4b9a0"}
SHORT = {"soon-select": "select", "soon-poll": "poll", "soon-epoll": "epoll",
         "soon-uring": "uring", "soon": "soon", "libuv": "uv", "libevent": "event",
         "libev": "ev", "llhttp": "llhttp", "http_parser": "http-parser", "nginx": "nginx",
         "h2o": "h2o", "evhttp": "evhttp", "libcurl": "curl", "raw-epoll": "raw-ep",
         "raw-uring": "raw-ur"}


def chart(panels, png, workdir, subtitle):
    """One bar-chart panel per workload, each normalised to its best peer = 1.0."""
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot not found: no chart")
        return False
    cols = 6
    rows_n = (len(panels) + cols - 1) // cols
    # gnuplot reads "_" as a subscript.
    peers = ", ".join(PEER_NAMES).replace("_", "-")
    lines = [f"set terminal pngcairo size {cols * 330},{rows_n * 290 + 70} font 'DejaVu Sans,9'",
             f"set output '{png}'",
             f"set multiplot layout {rows_n},{cols} title \"soon vs {peers}: "
             f"relative performance, best peer = 1.0, taller is better\\n{subtitle}\" "
             "font 'DejaVu Sans,12'",
             "set style fill solid 0.9 border -1", "set boxwidth 0.7",
             "set yrange [0:*]", "set grid ytics", "set xtics rotate by -30 font ',8'",
             "set key off", "set tmargin 2.5", "set bmargin 3.5", "set lmargin 5"]
    for n, (title, bars) in enumerate(panels):
        dat = os.path.join(workdir, f"panel{n}.dat")
        with open(dat, "w") as f:
            for x, (impl, rel, text) in enumerate(bars):
                color = int(COLORS.get(impl, "#777777")[1:], 16)
                f.write(f'{x} "{SHORT.get(impl, impl)}" {rel:.4f} "{text}" {color}\n')
        top = max([b[1] for b in bars] + [1.0]) * 1.25
        lines += [f"set title \"{title.replace('_', '-')}\" font ',9'",
                  f"set xrange [-0.6:{len(bars) - 0.4}]", f"set yrange [0:{top:.3f}]",
                  f"plot '{dat}' using 1:3:5:xtic(2) with boxes lc rgb variable, "
                  f"'' using 1:($3 + {top * 0.04:.3f}):4 with labels font ',8', "
                  "1 with lines dt 2 lc rgb '#cc0000'"]
    lines.append("unset multiplot")
    script = os.path.join(workdir, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = subprocess.run([gp, script], capture_output=True, text=True)
    if p.returncode != 0:
        log("gnuplot failed:\n" + p.stderr)
        return False
    return True


def perf_counters_work():
    if not shutil.which("perf"):
        return False
    p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                       capture_output=True, text=True)
    return p.returncode == 0 and "not supported" not in p.stderr and re.search(
        r"^\d+,", p.stderr, re.M) is not None


def callgrind_ir(path, args, env, outdir):
    """Total Ir of one run, summed over its processes (the timers programs
    fork: the workload runs in the child)."""
    d = tempfile.mkdtemp(dir=outdir)
    p = subprocess.run(["valgrind", "--tool=callgrind",
                        f"--callgrind-out-file={d}/cg.%p.out", path] + args,
                       env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(path)} {' '.join(args)}: exit "
                           f"{p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
    total = 0
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
    if not total:
        raise RuntimeError("no totals in callgrind output")
    return total


def callgrind(bindir, workdir, selected):
    """Instructions per operation, as the difference of two runs of different
    sizes, so start-up and tear-down cancel out. Only for the workloads that
    ran (selected names); None if none of them did."""
    env = dict(os.environ, SOON_BACKEND="epoll")
    cases = [("pingpong-1", "pingpong", "rt", 2000, 12000, ["conns=1"], "round trip"),
             ("timers", "timers", "n", 20000, 100000, [], "timer")]
    cases = [c for c in cases if c[0] in selected]
    if not cases:
        return None
    lines = ["| workload | soon-epoll Ir | libuv Ir | soon / libuv | raw-epoll Ir (the limit) "
             "| soon / raw-epoll |", "| --- | --- | --- | --- | --- | --- |"]
    for name, prog, knob, a, b, extra, per in cases:
        irs = {}
        # The limit row too where there is one: user-space instructions are
        # the part of the gap that no scheduler noise blurs.
        limit = [("raw-epoll", "raw_epoll")] if prog == "pingpong" else []
        for impl, suffix in [("soon", "soon"), ("libuv", "uv")] + limit:
            path = os.path.join(bindir, f"{prog}-{suffix}")
            try:
                lo = callgrind_ir(path, extra + [f"{knob}={a}"], env, workdir)
                hi = callgrind_ir(path, extra + [f"{knob}={b}"], env, workdir)
                irs[impl] = (hi - lo) / (b - a)
                log(f"[callgrind] {name} {impl}: {irs[impl]:.0f} Ir per {per}")
            except Exception as e:  # reported, not fatal: it is a profile, not a check
                log(f"[callgrind] {name} {impl}: {e}")
        cell = {k: f"{v:,.0f} per {per}" for k, v in irs.items()}
        ratio = (f"{irs['soon'] / irs['libuv']:.2f}" if "soon" in irs and "libuv" in irs
                 else "")
        raw, raw_ratio = "", ""
        if limit:
            raw = cell.get("raw-epoll", "error")
            if "soon" in irs and "raw-epoll" in irs:
                raw_ratio = f"{irs['soon'] / irs['raw-epoll']:.2f}"
        lines.append(f"| {name} | {cell.get('soon', 'error')} | {cell.get('libuv', 'error')} "
                     f"| {ratio} | {raw} | {raw_ratio} |")
    return lines


def http_profile(bindir):
    """bench/http/profile.py's tables (syscalls and Ir per request for soon
    on epoll, nginx and h2o), or an error line: a profile, not a check."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http", "profile.py")
    env = dict(os.environ, SOON_BACKEND="epoll")
    log("[http profile] strace and callgrind under wrk: soon-epoll, nginx, h2o")
    p = subprocess.run([sys.executable, script, f"bin={bindir}", "impls=soon,nginx,h2o",
                        "seconds=2", "top=15"], env=env, capture_output=True, text=True,
                       timeout=1800)
    if p.returncode != 0:
        return [f"bench/http/profile.py failed: {(p.stderr or p.stdout).strip()[-300:]}"]
    return p.stdout.splitlines()


# Issue 16's targets for soon's server: (row, peer, soon's median / the peer's).
HTTP_TARGETS = [("http", "nginx", 1.5), ("http", "h2o", 1.0), ("http-pipelined", "nginx", 1.5),
                ("http-pipelined", "h2o", 1.0), ("http-file", "nginx", 1.0)]


def http_targets(rows):
    """Lines of a table: each soon backend's median over nginx's and h2o's
    for the targets above, or None if the http workload did not run."""
    def median(r, i):
        row = rows.get((r, i))
        ok = row is not None and row.status == "ok" and row.values
        return statistics.median(row.values) if ok else None

    lines = []
    for r, peer, target in HTTP_TARGETS:
        ref = median(r, peer)
        if ref is None:
            continue
        cells = []
        for b in BACKENDS:
            v = median(r, f"soon-{b}")
            cells.append("n/a" if v is None else
                         f"{v / ref:.2f}{'' if v / ref >= target else ' (below)'}")
        lines.append(f"| {r} | {peer} | ≥ {target:.1f} | " + " | ".join(cells) + " |")
    if not lines:
        return None
    return (["| row | soon over | target | " + " | ".join(f"soon-{b}" for b in BACKENDS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in BACKENDS) + " |"] + lines)


def http_limits(rows):
    """Lines of a table: each hello server's median (soon per backend, the
    raw loops, the peers) over each raw loop's and over nginx's, with its
    CPU per request; None if no raw loop ran. The raw loops' own ratio over
    nginx is about how far above nginx any server gets on this machine."""
    def median(r, i):
        row = rows.get((r, i))
        ok = row is not None and row.status == "ok" and row.values
        return statistics.median(row.values) if ok else None

    refs = LIMIT_NAMES + ["nginx"]
    lines = []
    for r in ("http", "http-pipelined"):
        if not any(median(r, n) for n in LIMIT_NAMES):
            continue
        for i in [f"soon-{b}" for b in BACKENDS] + LIMIT_NAMES + HTTP_PEERS:
            v = median(r, i)
            if v is None:
                continue
            cells = []
            for ref in refs:
                rv = median(r, ref)
                cells.append("—" if ref == i else "n/a" if rv is None else f"{v / rv:.2f}")
            row = rows[(r, i)]
            cpu = cpu_cell(row) if row.cpu else ""
            lines.append(f"| {r} | {i} | {fmt(v)} | {cpu} | " + " | ".join(cells) + " |")
    if not lines:
        return None
    return (["| row | server | median req/s | server CPU per request | "
             + " | ".join(f"over {n}" for n in refs) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in refs) + " |"] + lines)


def versions():
    out = []
    for pkg in ("libuv1-dev", "libevent-dev", "libev-dev", "node-llhttp",
                "libhttp-parser-dev", "nginx", "h2o", "wrk", "libcurl4-openssl-dev"):
        p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                           text=True)
        out.append(f"{pkg} {p.stdout.strip() or '?'}")
    return ", ".join(out)


def cheap_note(ws, m):
    """Which workloads ran more turns than the mode's default, if any."""
    more = [w["name"] for w in ws if w.get("reps_run", 0) > m["reps"]]
    if not more:
        return ""
    return f"; {m['cheap_reps']} for runs under {m['cheap_s']} s: {', '.join(more)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="directory of the built programs")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="mode")
    g.add_argument("--full", action="store_const", const="full", dest="mode")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"),
                    help="where latest.md and latest.png go (default bench/results)")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("workloads", nargs="*", help="run only these (names as in the table)")
    args = ap.parse_args()
    mode = args.mode or "quick"
    m = MODES[mode]
    args.bin = os.path.abspath(args.bin)
    os.makedirs(args.out, exist_ok=True)

    started = datetime.datetime.now()
    load0 = os.getloadavg()
    log(f"bench: {mode} mode, {m['reps']} repetitions, implementations alternating")
    ws, rows = run_all(args, mode)
    load1 = os.getloadavg()
    table, panels, behind, limit = summarise(ws, rows)
    failed = [(k, r) for k, r in rows.items() if r.status == "failed"]

    workdir = tempfile.mkdtemp(prefix="soon-bench-")
    cg = None
    if mode == "full" and not args.no_callgrind and shutil.which("valgrind"):
        cg = callgrind(args.bin, workdir, {w["name"] for w in ws})
    hp = None
    if (mode == "full" and not args.no_callgrind and shutil.which("valgrind")
            and any(w["name"] == "http" for w in ws)):
        hp = http_profile(args.bin)
    perf_ok = perf_counters_work()

    elapsed = (datetime.datetime.now() - started).total_seconds()
    subtitle = (f"{mode} mode, median of {m['reps']}, {started:%Y-%m-%d %H:%M}, "
                f"{os.cpu_count()} CPUs, load {load0[0]:.1f}→{load1[0]:.1f}")
    png = os.path.join(args.out, "latest.png")
    have_chart = chart(panels, png, workdir, subtitle)

    md = [f"# soon benchmarks: {mode} mode",
          "",
          f"- when: {started:%Y-%m-%d %H:%M}, {elapsed:.0f} s; command: "
          f"`bash bench/run --{mode}{''.join(' ' + n for n in args.workloads)}`",
          f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux "
          f"{platform.release()}; load average {load0[0]:.1f} at the start, "
          f"{load1[0]:.1f} at the end (other jobs share this machine: compare "
          "implementations within a row, not across runs)",
          f"- peers: {versions()}",
          f"- each implementation ran {m['reps']} times (http: {m['http_reps']}, "
          f"wrk loads of {m['http_duration']} s{cheap_note(ws, m)}), alternating "
          "A B C ... A B C; median and min–max of those runs",
          f"- noise: \"(noisy)\" marks a row whose min or max lies more than "
          f"{NOISE * 100:.0f} % from its median; soon is \"within noise of\" a peer "
          "when either median lies inside the other's min–max, whatever the ratio",
          "- soon / best peer: soon's median over the best peer's; in brackets how much "
          "better (+) or worse (−) soon does, whichever way the unit points. "
          "raw-epoll and raw-uring (pingpong, http) are hand-written loops without a "
          "library, the limit: never a peer, compared with soon in their own tables below",
          "- CPU per op: user + system CPU time of the whole process (set-up included; "
          "from the child's rusage) over the run's operations, median of the runs; "
          "only where the program runs in one thread (not async, pool, files); for http "
          "the server's own time from /proc over wrk's requests, user part in brackets",
          "", *table, ""]
    if limit:
        md += ["## soon against the limit (hand-written loops)", "",
               "soon's median over each raw loop's (bench/pingpong/raw_epoll.c: epoll and "
               "read/write; raw_uring.c: one liburing ring, a multishot receive per socket into "
               "a provided-buffer ring, "
               "sends whose completions are skipped), and the verdict against the better "
               f"of the two, the issue's target ≥ {LIMIT_TARGET} (higher is better; "
               "\"within noise\" as above).", "", *limit, ""]
    md.append("## Instructions (callgrind)")
    md.append("")
    if cg:
        md += ["Marginal instruction counts (Ir) per operation: the difference of two runs of "
               "different sizes over the difference in size, so set-up cancels out. "
               "Ping-pong: 2,000 vs 12,000 round trips, one connection; timers: 20,000 vs "
               "100,000.", "", *cg, ""]
    else:
        md += [f"Skipped in {mode} mode (run `bash bench/run --full`)." if mode != "full"
               else "Skipped (valgrind missing, --no-callgrind, or neither pingpong-1 "
               "nor timers selected).", ""]
    md.append("Hardware counters (`perf stat -e instructions`): "
              + ("available." if perf_ok else "not available on this machine, "
                 "so profiles here come from callgrind."))
    md.append("")
    targets = http_targets(rows)
    if targets:
        md += ["## HTTP server targets (issue 16)", "",
               "soon's median over the peer's, per backend.", "", *targets, ""]
    hl = http_limits(rows)
    if hl:
        md += ["## HTTP: soon and nginx against the limit", "",
               "Each hello server's median over each raw loop's (bench/http/raw_epoll.c: "
               "epoll and read/write; raw_uring.c: multishot accept and receive, sends whose "
               "completions are skipped; both answer every request head with soon's bytes and "
               "parse nothing else) and over nginx's. The raw loops' own ratio over nginx is "
               "about what any server could reach against issue 16's 1.5× nginx here. "
               "CPU: the server's user + system time over wrk's requests (user part in "
               "brackets).", "", *hl, ""]
    if hp:
        md += ["## HTTP servers: system calls and instructions per request", "",
               "`bench/http/profile.py`: each server under `strace -c -f`, then under "
               "callgrind (counters zeroed once it listens, dumped when wrk ends), loaded by "
               "wrk for 2 s; counts over wrk's completed requests. hello-N: the 13-byte "
               "response, N pipelined; file-1: the 1 MiB file.", "", *hp, ""]
    if behind:
        md += ["## Where soon is not ahead of the best peer", ""]
        md += [f"- {r}: {i} at {q:.2f}× {bp} ({pct:+.0f}%)"
               + (", within noise" if quiet else "") for r, i, q, bp, pct, quiet in behind]
        md.append("")
    if failed:
        md += ["## FAILED", ""]
        md += [f"- {k[0]} / {k[1]}: {r.note}" for k, r in failed]
        md.append("")
    if have_chart:
        md += ["![relative performance per workload](latest.png)", ""]
    text = "\n".join(md)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"bench: wrote {os.path.join(args.out, 'latest.md')}"
        + (f" and {png}" if have_chart else "") + f" in {elapsed:.0f} s")
    if failed:
        log(f"bench: {len(failed)} FAILED row(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
