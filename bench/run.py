#!/usr/bin/env python3
"""End-to-end benchmarks of the exporter on this machine (see BENCHMARKS.md).

Starts the Live API simulator (simulator/examples/bench_simulator.rs) and the release binary as separate
processes on loopback, measures poll cycles from the exporter's own poll-duration gauge and the
simulator's request log, drives /metrics with wrk from a second process side by side with nginx
serving the same bytes, reads RSS and CPU from /proc, and prints one table.

Needs: wrk and nginx (Debian: apt-get install wrk nginx-light).
Usage: python3 bench/run.py [--quick] [--no-build] [--bin PATH] [startup] [cycles] [scrapes] [memory] [flat] [scale]
       (no part named: all; --bin measures another build of the exporter, e.g. the base commit's)
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/tencent-live-exporter")
if "--bin" in sys.argv:
    BIN = os.path.abspath(sys.argv.pop(sys.argv.index("--bin") + 1))
    sys.argv.remove("--bin")
SIM = os.environ.get("TLE_BENCH_SIM") or os.path.join(ROOT, "target/release/examples/bench_simulator")
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


def spawn(args, env=None, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    p = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr)
    PROCS.append(p)
    return p


def drain(stream):
    for _ in stream:
        pass


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def start_sim(accounts, packages, types=1):
    p = spawn([SIM, "127.0.0.1:0", str(accounts), str(packages), str(types)], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    return p, line.strip().split()[-1]


def start_exporter(sim_addr, accounts, interval="1h", types=("traffic",), rps=20):
    d = tempfile.mkdtemp(prefix="tle-bench-")
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'[poll]\ninterval = "{interval}"\nrequests_per_second = {rps}\npage_size = 100\n')
        f.write("package_types = [" + ", ".join(f'"{t}"' for t in types) + "]\n")
        for a in range(accounts):
            f.write(f'[[accounts]]\nname = "a{a}"\nsecret_id = "AKIDbench{a}"\nsecret_key = "bench-key-{a}"\nendpoint = "http://{sim_addr}"\n')
    started = time.monotonic()
    # Port 0, read from the serving line: a port picked here and dropped could be taken by
    # another process before the exporter binds it. Polls that change nothing log at debug, so
    # info adds no line per poll; the rest of stderr is drained.
    p = spawn([BIN, "--config.file", cfg, "--web.listen-address", "127.0.0.1:0", "--log.level", "info"],
              stderr=subprocess.PIPE)
    port = None
    for line in p.stderr:
        m = re.search(rb"serving address=127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit(f"the exporter exited before serving ({p.wait()})")
    threading.Thread(target=drain, args=(p.stderr,), daemon=True).start()
    return p, port, started


def get(port, path="/metrics", headers=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def metrics(port):
    out = {}
    for line in get(port, timeout=60).decode().splitlines():
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


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def nginx_side_by_side(port, label, seconds=None):
    """wrk against the exporter and against nginx serving the same bytes, plain and gzip."""
    d = tempfile.mkdtemp(prefix="tle-nginx-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.chmod(d, 0o755)  # nginx's worker runs as an unprivileged user
    plain = get(port, timeout=60)
    gz = get(port, headers={"Accept-Encoding": "gzip"}, timeout=60)
    for name, body in (("metrics", plain), ("metrics.gz", gz)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(body)
    ng, ng_port = nginx(d)
    out = []
    for gzip, name, size in ((False, "plain", len(plain)), (True, "gzip", len(gz))):
        e_rps, e_p99 = wrk(f"http://127.0.0.1:{port}/metrics", gzip, seconds)
        n_rps, n_p99 = wrk(f"http://127.0.0.1:{ng_port}/metrics", gzip, seconds)
        out.append((name, size, e_rps, e_p99, n_rps, n_p99))
        row(f"/metrics {name} ({size / 1024:.0f} KiB), {label}, 8 clients",
            f"{e_rps:.0f} req/s = {e_rps / n_rps * 100:.0f}% of nginx ({n_rps:.0f}); p99 {e_p99:.2f} ms (nginx {n_p99:.2f})",
            ">= 100% of nginx", e_rps >= n_rps)
    stop(ng)
    shutil.rmtree(d, ignore_errors=True)
    return out


def wrk(url, gzip, seconds=None):
    args = ["wrk", "-t2", "-c8", f"-d{seconds or WRK_SECONDS}s", "--timeout", "30s", "--latency", url]
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


def second_poll(port, sim_addr, pairs, calls_per_poll):
    """The metrics once every pair's second poll is published: a new process holds its first
    Live API call one window (1 s) in case the process it replaces spent this second's budget
    (README, "Restarts"), so the first poll's duration includes that hold and is no measure of
    a poll cycle."""
    wait_polls(port, pairs)
    deadline = time.monotonic() + 120
    while len(sim_log(sim_addr)) < 2 * calls_per_poll:
        if time.monotonic() > deadline:
            raise SystemExit("the second poll did not happen in time")
        time.sleep(0.05)
    time.sleep(1.5)  # the store publishes at most once a second
    return metrics(port)


def poll_cycles():
    print("poll cycle at 20 requests/second (the second poll: the first holds its first call 1 s)", flush=True)
    for pages in (1, 10, 100):
        sim, addr = start_sim(1, pages * 100)
        exp, port, _ = start_exporter(addr, 1, interval="8s")
        m = second_poll(port, addr, 1, pages)
        took = m['tencent_live_exporter_poll_duration_seconds{account="a0",package_type="traffic"}']
        log = sim_log(addr)
        limited = sum(1 for l in log if l[2] != "ok")
        target = 1.05 * (pages - 1) / 20 + 0.05
        row(f"poll cycle, {pages} page(s) of 100", f"{took * 1000:.0f} ms, {len(log) // 2} calls, {limited} refused", f"<= {target * 1000:.0f} ms, 0 refused", took <= target and limited == 0)
        stop(exp)
        stop(sim)
    sim, addr = start_sim(4, 10_000)
    exp, port, _ = start_exporter(addr, 4, interval="30s")
    m = second_poll(port, addr, 4, 400)
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
    # The budget's work with many queued calls (issue 19): linear, one waiter woken per freed permit.
    out = subprocess.run(["cargo", "run", "-q", "--locked", "--example", "bench_budget"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    print(out, flush=True)
    locks = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            locks[int(cells[0])] = int(cells[2])
            row(f"budget, {cells[0]} queued calls", f"{cells[1]}, {cells[2]} locks", "linear", True)
    if 100 in locks and 3000 in locks:
        ratio = locks[3000] / locks[100]
        row("budget work, 3,000 vs 100 queued calls", f"{ratio:.0f}x", "<= 45x (linear: 30x)", ratio <= 45)


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


def memory():
    """Peak RSS after the first poll at 1,000 and 10,000 packages, as `scrapes` measures it, without
    wrk or nginx (the first measure of `scrapes`, on its own)."""
    for packages in (1_000, 10_000):
        sim, addr = start_sim(1, packages)
        exp, port, _ = start_exporter(addr, 1, interval="20s")
        wait_polls(port, 1)
        time.sleep(1.5)  # the publish after the poll (at most one a second) is in the peak
        rss, hwm = proc_status(exp.pid)
        limit = 16 if packages == 1_000 else 32
        row(f"RSS after first poll, {packages} packages", f"{rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)", f"peak < {limit} MiB", hwm < limit * 1024)
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


def scale():
    """Many accounts x 3 query types at the default 60 s interval and 5 requests/second, against
    a simulator that answers in about a millisecond: the cost of a poll as the total grows."""
    sizes = [int(a) for a in os.environ.get("SCALE_ACCOUNTS", "10,100,1000").split(",")]
    steady = 30 if QUICK else 60
    for accounts in sizes:
        pairs = accounts * 3
        print(f"{accounts} accounts x 3 types", flush=True)
        sim, addr = start_sim(accounts, 2, types=3)
        sim_started = time.monotonic()
        exp, port, started = start_exporter(addr, accounts, interval="60s", rps=5,
                                            types=("traffic", "transcode", "co_anchoring"))
        offset_ms = (started - sim_started) * 1000
        # A Prometheus-like scraper: one gzip scrape a second, timed, for the whole run.
        latencies, failures, done = [], [0], threading.Event()

        def scraper():
            while not done.is_set():
                t = time.monotonic()
                try:
                    get(port, headers={"Accept-Encoding": "gzip"}, timeout=60)
                    latencies.append((time.monotonic() - t) * 1000)
                except OSError:
                    if time.monotonic() - started > 2:
                        failures[0] += 1
                done.wait(max(0.0, 1.0 - (time.monotonic() - t)))

        th = threading.Thread(target=scraper, daemon=True)
        th.start()
        # Every pair's first poll, from the simulator's log (each pair is one request).
        first_round = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            log = [l for l in sim_log(addr) if l[2] == "ok"]
            firsts = {}
            for l in log:
                firsts.setdefault((l[0], l[4]), float(l[3]))
            if len(firsts) >= pairs:
                first_round = (max(firsts.values()) - offset_ms) / 1000
                break
            time.sleep(1)
        row(f"{accounts} accounts: every pair's first poll", f"{first_round:.1f} s" if first_round else "not within 300 s",
            "< 60 s (one interval)", first_round is not None and first_round < 60)
        # Steady state: one interval of polls, CPU from /proc, polls from the simulator.
        cpu0, polls0, t0 = cpu_seconds(exp.pid), len(sim_log(addr)), time.monotonic()
        time.sleep(steady)
        cpu1, polls1, t1 = cpu_seconds(exp.pid), len(sim_log(addr)), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        per_poll = (cpu1 - cpu0) / max(1, polls1 - polls0)
        row(f"{accounts} accounts: exporter CPU in steady state", f"{share * 100:.1f}% of a core ({polls1 - polls0} polls in {t1 - t0:.0f} s)",
            "< 10% at 1,000 accounts", share < 0.10)
        row(f"{accounts} accounts: CPU per pair poll", f"{per_poll * 1000:.2f} ms", "flat as accounts grow", None)
        done.set()
        th.join()
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        row(f"{accounts} accounts: scrape (gzip) while polling", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies or [0]):.1f} ms ({len(latencies)} scrapes, {failures[0]} failed)",
            "p99 < 100 ms", p99 < 100 and failures[0] == 0)
        try:
            m = metrics(port)
        except OSError:
            m = {}
            print("  /metrics did not answer within 60 s", flush=True)
        ups = sum(1 for k, v in m.items() if k.startswith("tencent_live_up{") and v == 1)
        series = sum(1 for k in m if k.startswith("tencent_live_package_expiry_timestamp_seconds{"))
        row(f"{accounts} accounts: on /metrics at the end", f"{ups} of {pairs} pairs up, {series} of {pairs * 2} packages",
            "all", ups == pairs and series == pairs * 2)
        if m:
            nginx_side_by_side(port, f"{accounts} accounts", seconds=4)
        rss, hwm = proc_status(exp.pid)
        row(f"{accounts} accounts: RSS", f"{rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)", "peak < 128 MiB at 1,000 accounts", hwm < 128 * 1024)
        stop(exp)
        stop(sim)


def main():
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and (not only or set(only) - {"memory", "budget", "cycles", "startup"}):
            raise SystemExit(f"{tool} is missing: apt-get install wrk nginx-light")
    if "--no-build" in sys.argv:
        sys.argv.remove("--no-build")
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tencent-live-exporter", "--example", "bench_simulator"], cwd=ROOT, check=True)
    print(f"exporter: {BIN}", flush=True)
    try:
        for name, part in (("startup", startup), ("cycles", poll_cycles), ("budget", poll_budget), ("scrapes", scrapes_and_memory), ("memory", memory), ("flat", flat_over_polls), ("scale", scale)):
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
