#!/usr/bin/env python3
"""pilot's benchmark: measures the figures of README's "Performance targets" and prints a
Markdown table.

usage: bench/bench.py [--quick] [FIGURE...]

Run it as root from the repository root (pilot runs as PID 1 of a PID namespace, as in a
container). It builds the static release binary first and the small C helpers in bench/.
--quick uses fewer repetitions (for a smoke run); the README's figures come from a full run.
FIGURE names some of the functions below (e.g. change_propagation) to measure only those.
"""
import json
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PILOT = os.path.join(ROOT, "target/x86_64-unknown-linux-musl/release/pilot")
DOUBLE = os.path.join(ROOT, "target/release/consul-double")
QUICK = "--quick" in sys.argv
WORK = tempfile.mkdtemp(prefix="pilot-bench-")


def build():
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--target", "x86_64-unknown-linux-musl"],
        cwd=ROOT,
        check=True,
    )
    # The Consul double, for the watch figures (a test tool, never part of pilot).
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "consul-double"], cwd=ROOT, check=True)
    for helper in ("stamp", "reap"):
        subprocess.run(
            ["gcc", "-O2", "-o", os.path.join(WORK, helper), os.path.join(ROOT, "bench", helper + ".c")],
            check=True,
        )


def helper(name):
    return os.path.join(WORK, name)


def pid1(*argv):
    """argv to run pilot as PID 1 of a new PID namespace."""
    return ["unshare", "--pid", "--fork", "--mount-proc", PILOT, *argv]


def children_of(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(name))
    return found


def wait_for_child(pid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = children_of(pid)
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise RuntimeError(f"no child of {pid}")


def status_field(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise KeyError("Pss")


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# === the figures ===


def binary_size():
    size = os.path.getsize(PILOT)
    return [("static binary size (x86_64 musl)", f"{size / 1e6:.2f} MB ({size:,} bytes)", "<= 3 MB")]


def resident_memory():
    """pilot as PID 1 of a PID namespace, supervising `sleep`."""
    outer = subprocess.Popen(pid1("--", "sleep", "1000"))
    try:
        pilot = wait_for_child(outer.pid)
        wait_for_child(pilot)  # sleep has started
        time.sleep(0.5)
        rss = status_field(pilot, "VmRSS")
        pss = pss_kib(pilot)
    finally:
        # unshare ignores SIGTERM while it waits; pilot forwards it to sleep and exits.
        for pid in children_of(outer.pid):
            os.kill(pid, 15)
        outer.wait()
    return [("resident memory, init mode (pilot as PID 1 supervising sleep)", f"{rss / 1024:.2f} MB RSS ({pss / 1024:.2f} MB PSS)", "<= 3 MB")]


def exec_latency():
    """From the moment the benchmark starts pilot to the moment the child begins to run."""
    runs = 50 if QUICK else 300

    def measure(argv):
        samples = []
        for _ in range(runs):
            start = time.monotonic_ns()
            out = subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout
            samples.append((int(out.split()[-1]) - start) / 1e6)
        return samples

    direct = measure([helper("stamp")])
    plain = measure([PILOT, "--", helper("stamp")])
    extra = [p - statistics.median(direct) for p in plain]
    return [
        (
            "start to child exec, init mode (added to a direct exec)",
            f"p50 {statistics.median(extra):.2f} ms, p99 {percentile(extra, 99):.2f} ms "
            f"(direct exec p50 {statistics.median(direct):.2f} ms; {runs} runs)",
            "<= 10 ms",
        )
    ]


def reaping_rate():
    """Orphans that exit at the same moment, reaped by pilot as PID 1."""
    count = 2000 if QUICK else 10000
    rates = []
    for _ in range(1 if QUICK else 3):
        out = subprocess.run(pid1("--", helper("reap"), str(count)), stdout=subprocess.PIPE, check=True).stdout
        n, seconds = out.split()
        rates.append(int(n) / float(seconds))
    return [("orphaned zombies reaped per second (PID 1)", f"{statistics.median(rates):,.0f} per second ({count:,} orphans exiting at once, median of {len(rates)})", ">= 10,000 per second")]


def write_config(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_to_first_job():
    """Config mode: from starting pilot to its first job's exec."""
    runs = 30 if QUICK else 200
    config = write_config(
        "first-job.json5",
        '{ consul: "127.0.0.1:1", logging: { format: "default" }, jobs: [{ name: "stamp", exec: "%s" }] }' % helper("stamp"),
    )
    samples = []
    for _ in range(runs):
        start = time.monotonic_ns()
        out = subprocess.run([PILOT, "-config", config], stdout=subprocess.PIPE, check=True).stdout.decode()
        # `<time> stamp <pid> <nanoseconds>`
        line = next(l for l in out.splitlines() if " stamp " in l)
        samples.append((int(line.split()[-1]) - start) / 1e6)
    return [("start to first job running (config mode)", f"p50 {statistics.median(samples):.2f} ms, p99 {percentile(samples, 99):.2f} ms ({runs} runs)", "<= 10 ms")]


def shutdown_latency():
    """pilot as PID 1 with three jobs that exit at once on SIGTERM: SIGTERM to exit."""
    runs = 10 if QUICK else 50
    config = write_config(
        "shutdown.json5",
        '{ consul: "127.0.0.1:1", jobs: [%s] }'
        % ", ".join('{ name: "j%d", exec: ["sleep", "1000"] }' % i for i in range(3)),
    )
    samples = []
    for _ in range(runs):
        outer = subprocess.Popen(pid1("-config", config), stdout=subprocess.DEVNULL)
        pilot = wait_for_child(outer.pid)
        while len(children_of(pilot)) < 3:
            time.sleep(0.005)
        start = time.monotonic()
        os.kill(pilot, 15)
        outer.wait()
        samples.append((time.monotonic() - start) * 1000)
    return [("SIGTERM to exit, jobs that exit at once (PID 1)", f"p50 {statistics.median(samples):.1f} ms, p99 {percentile(samples, 99):.1f} ms ({runs} runs)", "<= 100 ms")]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_ms(pid):
    """CPU time of every thread of `pid` in milliseconds, from the scheduler's nanosecond count
    (`se.sum_exec_runtime`), far finer than the clock ticks of /proc/PID/stat."""
    total = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/sched") as f:
            for line in f:
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1])
    return total


def reference_workload():
    """The reference workload (README, "Performance targets"): pilot as PID 1 of a PID namespace with a job that has an
    exec health check every 5 s (a Consul service), a watch, and telemetry on, against the
    Consul double. Measures pilot's resident memory at rest, its CPU over a quiet window (60 s),
    and the requests it makes to Consul in that window, per minute."""
    window = 10 if QUICK else 60
    double = Double()
    double.register("backend-1", "backend", 9000, "passing")
    config = write_config(
        "reference.json5",
        """{
  consul: "%s",
  control: { socket: "%s" },
  jobs: [{ name: "app", exec: ["sleep", "100000"], port: 8000, interfaces: "static:127.0.0.1",
           health: { exec: "true", interval: 5, ttl: 15 } }],
  watches: [{ name: "backend", interval: 10 }],
  telemetry: { port: %d, interfaces: ["static:127.0.0.1"] },
}"""
        % (double.address, os.path.join(WORK, "reference.sock"), free_port()),
    )
    outer = subprocess.Popen(pid1("-config", config), stdout=subprocess.DEVNULL)
    try:
        pilot = wait_for_child(outer.pid)
        # Past the first checks, registrations and heartbeats: the steady state.
        time.sleep(12)
        before_requests = double.request_count()
        before_cpu = sched_ms(pilot)
        time.sleep(window)
        used = (sched_ms(pilot) - before_cpu) / 1000
        requests = double.request_count() - before_requests
        rss = status_field(pilot, "VmRSS")
        pss = pss_kib(pilot)
    finally:
        os.kill(pilot, 15)
        outer.wait()
        double.stop()
    return [
        ("resident memory, reference workload (pilot as PID 1)", f"{rss / 1024:.2f} MB RSS ({pss / 1024:.2f} MB PSS)", "<= 3 MB"),
        ("idle CPU, reference workload", f"{used * 1000:.0f} ms CPU over {window} s ({used / window * 100:.3f} %)", ""),
        ("Consul requests per minute, reference workload", f"{requests * 60 / window:.0f} (a 5 s TTL heartbeat, the telemetry heartbeat, a blocking watch with a 10 s wait)", ""),
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Double:
    """The standalone Consul double (release build), on a free port."""

    def __init__(self, compact=False):
        self.address = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [DOUBLE, "--listen", self.address, "--no-jitter"] + (["--compact-json"] if compact else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for line in self.proc.stdout:
            if b"ready" in line:
                break

    def put(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(f"http://{self.address}{path}", data=data, method="PUT")
        with urllib.request.urlopen(req) as r:
            r.read()

    def put_kv(self, key, value):
        req = urllib.request.Request(f"http://{self.address}/v1/kv/{key}", data=value, method="PUT")
        with urllib.request.urlopen(req) as r:
            r.read()

    def register(self, service_id, name, port, status):
        self.put(
            "/v1/agent/service/register",
            {"ID": service_id, "Name": name, "Address": "10.0.0.1", "Port": port, "Check": {"TTL": "1h", "Status": status}},
        )

    def request_count(self):
        """How many API requests the double has logged (its own /_double/ API is not logged)."""
        with urllib.request.urlopen(f"http://{self.address}/_double/requests") as r:
            return len(json.load(r))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class WatchingPilot:
    """pilot as PID 1 with a watch on `service` (or the watch `watch`, named `service`) and an
    onChange hook that prints CLOCK_MONOTONIC."""

    def __init__(self, double, service, watch=None):
        watch = watch or '{ name: "%s", interval: 10 }' % service
        config = write_config(
            f"watch-{service}.json5",
            """{
  consul: "%s",
  control: { socket: "%s" },
  jobs: [{ name: "onChange", exec: "%s", when: { source: "watch.%s", each: "changed" } }],
  watches: [%s],
}"""
            % (double.address, os.path.join(WORK, f"{service}.sock"), helper("stamp"), service, watch),
        )
        self.outer = subprocess.Popen(pid1("-config", config), stdout=subprocess.PIPE)
        self.pid = wait_for_child(self.outer.pid)
        self.stamps = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        # `<time> onChange <pid> <nanoseconds>`
        for line in self.outer.stdout:
            fields = line.split()
            if len(fields) == 4 and fields[1] == b"onChange" and fields[3].isdigit():
                self.stamps.put(int(fields[3]))

    def next_stamp(self, timeout=10):
        return self.stamps.get(timeout=timeout)

    def drain(self, quiet=0.5):
        """Waits until no hook has run for `quiet` seconds."""
        while True:
            try:
                self.stamps.get(timeout=quiet)
            except queue.Empty:
                return

    def cpu_ms(self):
        """CPU time of every thread of pilot: the scheduler's count, and utime+stime in clock
        ticks as /proc/PID/stat counts them (a cross-check)."""
        return sched_ms(self.pid), cpu_seconds(self.pid) * 1000

    def stop(self):
        os.kill(self.pid, 15)
        self.outer.wait()


def change_propagation():
    """From the moment the benchmark asks the double to mark an instance passing (or to remove it)
    to the moment pilot's onChange hook starts (it prints CLOCK_MONOTONIC first thing). The time
    includes the benchmark's HTTP request to the double. Changes are spaced out (0.4 s) so that the
    watch's rate limit (a burst of 5 queries, then 5 a second) never delays one."""
    changes = 20 if QUICK else 200
    double = Double()
    pilot = None
    try:
        double.register("base", "svc", 8000, "passing")
        pilot = WatchingPilot(double, "svc")
        pilot.next_stamp()  # the first answer
        samples = []
        for i in range(changes // 2):
            sid = f"svc-{i}"
            # A critical instance is not passing: no change for the watch (a wake-up with the same
            # passing set, which must not run the hook).
            double.register(sid, "svc", 9000 + i, "critical")
            time.sleep(0.4)
            for step in (f"/v1/agent/check/pass/service:{sid}", f"/v1/agent/service/deregister/{sid}"):
                start = time.monotonic_ns()
                double.put(step)
                samples.append((pilot.next_stamp() - start) / 1e6)
                time.sleep(0.4)
        extra = pilot.stamps.qsize()
    finally:
        if pilot:
            pilot.stop()
        double.stop()
    note = f"; {extra} extra hook runs" if extra else ""
    return [
        (
            "Consul change to onChange hook started (blocking query, PID 1)",
            f"p50 {statistics.median(samples):.2f} ms, p99 {percentile(samples, 99):.2f} ms, max {max(samples):.2f} ms "
            f"({len(samples)} changes: an instance marked passing, then removed{note})",
            "p99 <= 100 ms",
        )
    ]


def watch_cpu_per_change():
    """pilot's own CPU time (every thread; the hook's process is not counted) for one change of a
    watched service with 1,000 passing instances: one instance's check flips between critical and
    passing, so every answer carries 999 or 1,000 instances, and the onChange hook runs. Also a
    wake-up without a change (the double answers the blocked query with the same data): the
    watch's own cost of receiving, decoding and comparing the answer. Each is measured around one
    event, once pilot is quiet again, less pilot's idle CPU over the same time, and averaged.
    Twice: against a server agent's compact answer, and a dev agent's indented one (twice the
    bytes, half of them spaces)."""
    rows = []
    for compact, agent in ((True, "a server agent's compact JSON"), (False, "a dev agent's indented JSON")):
        per_change, per_wake, size, spurious_hooks = watch_cpu(compact)
        note = f"; {spurious_hooks} hook runs on wake-ups" if spurious_hooks else ""
        answer = f"answer of {size / 1e6:.1f} MB, {agent}"
        rows.append(
            (f"one watch over 1,000 instances: pilot's CPU per change ({answer}, hook started)", per_change, "<= 5 ms CPU")
        )
        rows.append((f"one watch over 1,000 instances: pilot's CPU per wake-up without a change ({answer})", per_wake + note, ""))
    return rows


def watch_cpu(compact):
    instances = 1000
    changes = 10 if QUICK else 40
    double = Double(compact)
    pilot = None
    try:
        for i in range(instances):
            double.register(f"big-{i:04d}", "big", 10000 + i, "passing")
        with urllib.request.urlopen(f"http://{double.address}/v1/health/service/big?passing=1") as r:
            size = len(r.read())
        pilot = WatchingPilot(double, "big")
        pilot.next_stamp()
        measure = cpu_meter(pilot)

        def change(i):
            double.put(f"/v1/agent/check/{'fail' if i % 2 == 0 else 'pass'}/service:big-0500")
            pilot.next_stamp()
            pilot.drain(0.3)

        def wake():
            double.put("/_double/wake")
            time.sleep(0.3)

        per_change = [measure(lambda: change(i)) for i in range(changes)]
        per_wake = [measure(wake) for _ in range(changes)]
        spurious_hooks = pilot.stamps.qsize()
    finally:
        if pilot:
            pilot.stop()
        double.stop()

    return cpu_figure(per_change), cpu_figure(per_wake), size, spurious_hooks


def cpu_meter(pilot):
    """Once pilot is quiet: a function that runs an event and returns pilot's CPU for it (ms, by
    the scheduler's count, less pilot's idle CPU over the same time) and by utime+stime."""
    pilot.drain()
    idle_start = pilot.cpu_ms()[0]
    time.sleep(2)
    idle = (pilot.cpu_ms()[0] - idle_start) / 2  # ms of CPU per second at rest

    def measure(event):
        before, before_ticks = pilot.cpu_ms()
        started = time.monotonic()
        event()
        after, after_ticks = pilot.cpu_ms()
        return after - before - idle * (time.monotonic() - started), after_ticks - before_ticks

    return measure


def cpu_figure(samples):
    precise = [p for p, _ in samples]
    ticks = statistics.mean(t for _, t in samples)
    return (
        f"mean {statistics.mean(precise):.2f} ms, p50 {statistics.median(precise):.2f} ms, max {max(precise):.2f} ms "
        f"({len(samples)} times; utime+stime in ticks: {ticks:.1f} ms)"
    )


def kv_change_propagation():
    """From the benchmark's write of a watched key (PUT /v1/kv/<key> to the double) to pilot's
    onChange hook started, as change_propagation for a service. Spaced out by 0.4 s."""
    changes = 20 if QUICK else 200
    double = Double()
    pilot = None
    try:
        double.put_kv("app/config.json", b"v")
        pilot = WatchingPilot(double, "appcfg", '{ name: "appcfg", key: "app/config.json", interval: 10 }')
        pilot.next_stamp()
        samples = []
        for i in range(changes):
            start = time.monotonic_ns()
            double.put_kv("app/config.json", b'{"version": %d}' % i)
            samples.append((pilot.next_stamp() - start) / 1e6)
            time.sleep(0.4)
        extra = pilot.stamps.qsize()
    finally:
        if pilot:
            pilot.stop()
        double.stop()
    note = f"; {extra} extra hook runs" if extra else ""
    return [
        (
            "Consul KV write to onChange hook started (key watch, blocking query, PID 1)",
            f"p50 {statistics.median(samples):.2f} ms, p99 {percentile(samples, 99):.2f} ms, max {max(samples):.2f} ms "
            f"({len(samples)} writes{note})",
            "",
        )
    ]


def kv_prefix_cpu_per_change():
    """pilot's own CPU for one change under a watched prefix of 1,000 keys (one key's value
    rewritten, the hook started), measured as watch_cpu_per_change does."""
    keys = 1000
    changes = 10 if QUICK else 40
    double = Double(compact=True)
    pilot = None
    try:
        for i in range(keys):
            double.put_kv(f"app/flags/f{i:04d}", b'{"enabled": true, "rollout": 50}')
        with urllib.request.urlopen(f"http://{double.address}/v1/kv/app/flags/?recurse") as r:
            size = len(r.read())
        pilot = WatchingPilot(double, "flags", '{ name: "flags", prefix: "app/flags/", interval: 10 }')
        pilot.next_stamp()
        measure = cpu_meter(pilot)

        def change(i):
            double.put_kv("app/flags/f0500", b'{"enabled": %s, "rollout": 50}' % (b"false" if i % 2 == 0 else b"true"))
            pilot.next_stamp()
            pilot.drain(0.3)

        per_change = [measure(lambda: change(i)) for i in range(changes)]
    finally:
        if pilot:
            pilot.stop()
        double.stop()
    return [
        (
            f"one prefix watch over 1,000 keys: pilot's CPU per change (answer of {size / 1e6:.2f} MB, hook started)",
            cpu_figure(per_change),
            "",
        )
    ]


def kv_burst_hook_runs():
    """Ten writes to keys under a watched prefix within 200 ms (one every 20 ms): how many times
    the onChange hook runs, without `wait` and with `wait: { min: "300ms", max: "2s" }`. A round
    ends when no hook has run for a second."""
    rounds = 3 if QUICK else 10
    rows = []
    for label, wait in (("without wait", ""), ('with wait: { min: "300ms", max: "2s" }', ', wait: { min: "300ms", max: "2s" }')):
        double = Double()
        pilot = None
        runs = []
        try:
            double.put_kv("app/flags/seed", b"x")
            pilot = WatchingPilot(double, "flags", '{ name: "flags", prefix: "app/flags/", interval: 10%s }' % wait)
            pilot.next_stamp()
            pilot.drain(1.0)
            for r in range(rounds):
                for i in range(10):
                    double.put_kv(f"app/flags/f{i}", b"%d" % r)
                    time.sleep(0.02)
                pilot.next_stamp()
                count = 1
                while True:
                    try:
                        pilot.stamps.get(timeout=1.0)
                        count += 1
                    except queue.Empty:
                        break
                runs.append(count)
        finally:
            if pilot:
                pilot.stop()
            double.stop()
        rows.append(
            (
                f"hook runs for ten KV writes within 200 ms under a watched prefix, {label}",
                f"mean {statistics.mean(runs):.1f}, min {min(runs)}, max {max(runs)} ({len(runs)} rounds)",
                "",
            )
        )
    return rows


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = status_like("/proc/meminfo", "MemTotal") / 1024 / 1024
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def status_like(path, field):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    if os.geteuid() != 0:
        sys.exit("bench.py needs root (PID namespaces)")
    build()
    rows = []
    figures = [binary_size, resident_memory, reference_workload, exec_latency, start_to_first_job, shutdown_latency, reaping_rate]
    figures += [change_propagation, watch_cpu_per_change]
    figures += [kv_change_propagation, kv_prefix_cpu_per_change, kv_burst_hook_runs]
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    if only:
        figures = [f for f in figures if f.__name__ in only]
    for figure in figures:
        rows.extend(figure())
    print(f"Measured {time.strftime('%Y-%m-%d')} on {machine()}{' (quick run)' if QUICK else ''}.\n")
    print("| figure | pilot | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
