#!/usr/bin/env python3
# bench/http-client/launch.py: one implementation's turn in the http-client workload: starts nginx
# as the http workload does, checks it, runs the client program once per conns= value; RESULT lines.
"""Usage: launch.py impl=NAME bin=DIR [duration=S] [conns=N,N,...]

NAME is soon-<backend> (bin/http-client-soon; the backend comes from
$SOON_BACKEND, which the driver sets) or libcurl (bin/http-client-curl).
Each program keeps N keep-alive GETs of nginx's 13-byte hello in flight for
S seconds, checks every response and prints `RESULT http-client-N ...`;
this relays those lines under impl's name and speaks the driver's protocol
(SKIP and exit 77, FAILED: on stderr and exit 1) like bench/http/launch.py,
whose server code it shares.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/http/launch.py, loaded by path: its module name is this file's too.
_spec = importlib.util.spec_from_file_location(
    "http_launch", os.path.join(HERE, os.pardir, "http", "launch.py"))
http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(http)

PROGRAMS = {"libcurl": "http-client-curl"}


def program(impl, binary):
    name = "http-client-soon" if impl.startswith("soon") else PROGRAMS.get(impl)
    if name is None:
        raise http.Failure(f"unknown implementation {impl}")
    path = os.path.join(binary, name)
    if not os.path.exists(path):
        raise http.Failure(f"{path} not built")
    return path


def run_client(path, url, conns, duration):
    """One run of the client program: its RESULT line's (row, value)."""
    cmd = [path, f"url={url}", f"conns={conns}", f"duration={duration}"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=float(duration) + 60)
    except subprocess.TimeoutExpired:
        raise http.Failure(f"{os.path.basename(path)} conns={conns} did not finish")
    if p.returncode == 77:
        why = next((l[5:] for l in p.stdout.splitlines() if l.startswith("SKIP ")),
                   "not available here")
        raise http.Skip(why)
    if p.returncode != 0:
        err = [l for l in p.stderr.splitlines() if l.strip()]
        raise http.Failure(f"{os.path.basename(path)} conns={conns}: exit {p.returncode}: "
                           f"{err[-1] if err else ''}")
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "RESULT":
            return f[1], float(f[3])
    raise http.Failure(f"{os.path.basename(path)} conns={conns} printed no RESULT line")


def load(impl, o, root, workdir):
    path = program(impl, o["bin"])
    server, _ = http.servers_for("nginx", o, root, workdir)
    results = []
    try:
        server.start()
        http.check(server.port, http.HELLO_PATH, http.BODY, 16)
        url = f"http://127.0.0.1:{server.port}{http.HELLO_PATH}"
        for conns in o.get("conns", "16,1").split(","):
            results.append(run_client(path, url, int(conns), o.get("duration", "1")))
        server.stop()
    finally:
        server.kill()
    return results


def run(o):
    impl = o["impl"]
    data = os.path.join(o["bin"], os.pardir, "data")
    root = http.make_root(os.path.join(data, "http-root"))
    runs = os.path.join(data, "http-run")
    os.makedirs(runs, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"client-{impl}-", dir=runs)
    os.chmod(workdir, 0o755)  # nginx's worker runs as nobody
    try:
        results = load(impl, o, root, workdir)
    except http.Failure as e:
        raise http.Failure(f"{e} (logs in {workdir})") from None
    except http.Skip:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    for row, value in results:
        print(f"RESULT {row} {impl} {value:.6g} req/s")


def main():
    try:
        run(http.opts_from(sys.argv[1:]))
    except http.Skip as e:
        print(f"SKIP {e}", flush=True)
        return 77
    except http.Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
