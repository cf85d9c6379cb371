#!/usr/bin/env python3
"""End-to-end benchmarks of the exporter on this machine (see BENCHMARKS.md).

Starts the Live API simulator (examples/bench_simulator.rs) and the release binary as separate
processes on loopback, measures poll cycles from the exporter's own poll-duration gauge and the
simulator's request log, drives /metrics with wrk from a second process side by side with nginx
serving the same bytes, reads RSS and CPU from /proc, and prints one table.

Needs: wrk and nginx (Debian: apt-get install wrk nginx-light).
Usage: python3 bench/run.py [--quick] [startup] [cycles] [scrapes] [flat]   (no part named: all)
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/tencent-live-exporter")
SIM = os.path.join(ROOT, "target/release/examples/bench_simulator")
QUICK = "--quick" in sys.argv
WRK_SECONDS = 4 if QUICK else 8
ROWS = []
PROCS = []


def row(what, value, target, ok):
    ROWS.append((what, value, target, "yes" if ok else ("-" if ok is None else "NO")))
    print(f"  {what}: {value} (target {target})", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, env=None, stdout=subprocess.DEVNULL):
    p = subprocess.Popen(args, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def start_sim(accounts, packages):
    p = spawn([SIM, "127.0.0.1:0", str(accounts), str(packages)], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    return p, line.strip().split()[-1]


def start_exporter(sim_addr, accounts, interval="1h", types=("traffic",)):
    d = tempfile.mkdtemp(prefix="tle-bench-")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'[poll]\ninterval = "{interval}"\nrequests_per_second = 20\npage_size = 100\n')
        f.write("package_types = [" + ", ".join(f'"{t}"' for t in types) + "]\n")
        for a in range(accounts):
            f.write(f'[[accounts]]\nname = "a{a}"\nsecret_id = "AKIDbench{a}"\nsecret_key = "bench-key-{a}"\nendpoint = "http://{sim_addr}"\n')
    port = free_port()
    started = time.monotonic()
    p = spawn([BIN, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "error"])
    return p, port, started


def get(port, path="/metrics", headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def metrics(port):
    out = {}
    for line in get(port).decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def wait_polls(port, pairs, min_requests=1, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = metrics(port)
            ups = [v for k, v in m.items() if k.startswith("tencent_live_up{")]
            if len(ups) >= pairs and all(v == 1 for v in ups):
                return m
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("exporter did not finish its polls in time")


def sim_log(addr):
    text = urllib.request.urlopen(f"http://{addr}/__requests", timeout=5).read().decode()
    return [l.split() for l in text.splitlines() if l]


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, gzip):
    args = ["wrk", "-t2", "-c8", f"-d{WRK_SECONDS}s", "--latency", url]
    if gzip:
        args[1:1] = ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def nginx(files_dir):
    port = free_port()
    conf = os.path.join(files_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {files_dir}/nginx.pid; error_log stderr crit;
events {{ worker_connections 1024; }}
http {{ access_log off; open_file_cache max=16; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; root {files_dir};
    location = /metrics {{ default_type "text/plain; version=0.0.4; charset=utf-8";
      if ($http_accept_encoding ~ gzip) {{ rewrite ^ /metrics.gz last; }} }}
    location = /metrics.gz {{ internal; default_type "text/plain; version=0.0.4; charset=utf-8"; add_header Content-Encoding gzip; }} }} }}
""")
    p = spawn(["nginx", "-e", "stderr", "-c", conf, "-p", files_dir])
    for _ in range(100):
        try:
            get(port)
            return p, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start")


def poll_cycles():
    print("poll cycle at 20 requests/second", flush=True)
    for pages in (1, 10, 100):
        sim, addr = start_sim(1, pages * 100)
        exp, port, _ = start_exporter(addr, 1)
        m = wait_polls(port, 1)
        took = m['tencent_live_exporter_poll_duration_seconds{account="a0",package_type="traffic"}']
        log = sim_log(addr)
        limited = sum(1 for l in log if l[2] != "ok")
        target = 1.05 * (pages - 1) / 20 + 0.05
        row(f"poll cycle, {pages} page(s) of 100", f"{took * 1000:.0f} ms, {len(log)} calls, {limited} refused", f"<= {target * 1000:.0f} ms, 0 refused", took <= target and limited == 0)
        stop(exp)
        stop(sim)
    sim, addr = start_sim(4, 10_000)
    exp, port, _ = start_exporter(addr, 4)
    m = wait_polls(port, 4)
    worst = max(v for k, v in m.items() if k.startswith("tencent_live_exporter_poll_duration_seconds"))
    limited = sum(1 for l in sim_log(addr) if l[2] != "ok")
    target = 1.05 * 99 / 20 + 0.05
    row("poll cycle, 4 accounts x 100 pages in parallel", f"slowest {worst * 1000:.0f} ms, {limited} refused", f"<= {target * 1000:.0f} ms each", worst <= target and limited == 0)
    stop(exp)
    stop(sim)


def poll_budget():
    # The request budget's schedule (issue 10): 100 pages at 20/s under RTT 0-300 ms, random
    # arrival delays and a shared key, in virtual time (examples/bench_poll.rs).
    print("poll budget, virtual time", flush=True)
    out = subprocess.run(["cargo", "run", "-q", "--locked", "--example", "bench_poll"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    print(out, flush=True)
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[1].isdigit():
            row(cells[0], f"{cells[3]} (floor {cells[4]}), peak {cells[6]}/s, {cells[7]} refused", "0 refused, peak <= 20", cells[7] == "0" and int(cells[6]) <= 20)


def startup():
    sim, addr = start_sim(1, 1000)
    exp, port, started = start_exporter(addr, 1)
    while True:
        try:
            get(port)
            break
        except OSError:
            if time.monotonic() - started > 5:
                raise SystemExit("no scrape within 5 s")
    took = (time.monotonic() - started) * 1000
    row("start to first served scrape", f"{took:.0f} ms", "< 100 ms", took < 100)
    stop(exp)
    stop(sim)


def scrapes_and_memory():
    for packages in (1_000, 10_000):
        print(f"{packages} packages", flush=True)
        sim, addr = start_sim(1, packages)
        exp, port, _ = start_exporter(addr, 1, interval="20s")
        wait_polls(port, 1)
        rss, hwm = proc_status(exp.pid)
        limit = 16 if packages == 1_000 else 64
        row(f"RSS after first poll, {packages} packages", f"{rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)", f"peak < {limit} MiB", hwm < limit * 1024)

        d = tempfile.mkdtemp(prefix="tle-nginx-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.chmod(d, 0o755)  # nginx's worker runs as an unprivileged user
        plain = get(port)
        gz = get(port, headers={"Accept-Encoding": "gzip"})
        with open(os.path.join(d, "metrics"), "wb") as f:
            f.write(plain)
        with open(os.path.join(d, "metrics.gz"), "wb") as f:
            f.write(gz)
        ng, ng_port = nginx(d)
        for gzip, name, size in ((False, "plain", len(plain)), (True, "gzip", len(gz))):
            e_rps, e_p99 = wrk(f"http://127.0.0.1:{port}/metrics", gzip)
            n_rps, n_p99 = wrk(f"http://127.0.0.1:{ng_port}/metrics", gzip)
            ratio = e_rps / n_rps
            row(f"/metrics {name} ({size / 1024:.0f} KiB), {packages} packages, 8 clients",
                f"{e_rps:.0f} req/s = {ratio * 100:.0f}% of nginx ({n_rps:.0f}); p99 {e_p99:.2f} ms (nginx {n_p99:.2f})",
                ">= 80% of nginx" + ("; p99 < 5 ms" if packages == 1_000 else ""),
                ratio >= 0.8 and (packages != 1_000 or e_p99 < 5))
        stop(ng)
        shutil.rmtree(d, ignore_errors=True)

        # CPU of one poll: wait for the next scheduled poll (interval 20 s) and take the delta.
        # Progress is read from the simulator's log, so that no scrape of the exporter is counted.
        pages = packages // 100
        before = cpu_seconds(exp.pid)
        seen = len(sim_log(addr))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(sim_log(addr)) < seen + pages:
            time.sleep(0.2)
        time.sleep(0.5)  # the last page's parse and the encode after it
        cpu = cpu_seconds(exp.pid) - before
        row(f"CPU of one poll, {packages} packages", f"{cpu * 1000:.0f} ms = {cpu / packages * 1e6:.1f} us/package", "linear in packages", None)
        stop(exp)
        stop(sim)


def flat_over_polls():
    # 10 accounts x 3 query types at a 1 s interval: 30 polls a second, 1,000 polls in ~35 s.
    total = 300 if QUICK else 1000
    print(f"{total} consecutive polls", flush=True)
    sim, addr = start_sim(10, 100)
    exp, port, _ = start_exporter(addr, 10, interval="1s", types=("traffic", "transcode", "co_anchoring"))
    wait_polls(port, 30)
    samples = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        m = metrics(port)
        polls = sum(v for k, v in m.items() if k.startswith("tencent_live_exporter_api_requests_total"))
        rss, _ = proc_status(exp.pid)
        samples.append((polls, rss, len(m)))
        if polls >= total:
            break
        time.sleep(1)
    first = next(s for s in samples if s[0] >= total / 10)
    last = samples[-1]
    growth = (last[1] - first[1]) / 1024
    row(f"RSS and series across {int(last[0])} polls", f"RSS {first[1] / 1024:.1f} -> {last[1] / 1024:.1f} MiB, series {first[2]} -> {last[2]}", "flat", abs(growth) < 1.0 and first[2] == last[2])
    stop(exp)
    stop(sim)


def main():
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install wrk nginx-light")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tencent-live-exporter", "--example", "bench_simulator"], cwd=ROOT, check=True)
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    try:
        for name, part in (("startup", startup), ("cycles", poll_cycles), ("budget", poll_budget), ("scrapes", scrapes_and_memory), ("flat", flat_over_polls)):
            if not only or name in only:
                part()
    finally:
        for p in PROCS:
            stop(p)
    width = max(len(r[0]) for r in ROWS)
    vwidth = max(len(r[1]) for r in ROWS)
    print()
    print(f"{'measure':<{width}} | {'result':<{vwidth}} | target | met")
    print(f"{'-' * width}-|-{'-' * vwidth}-|--------|----")
    for what, value, target, ok in ROWS:
        print(f"{what:<{width}} | {value:<{vwidth}} | {target} | {ok}")


if __name__ == "__main__":
    main()
