#!/usr/bin/env python3
"""pilot's benchmark: measures the figures of PRODUCT.md section 4 and prints a Markdown table.

usage: bench/bench.py [--quick]

Run it as root from the repository root (pilot runs as PID 1 of a PID namespace, as in a
container). It builds the static release binary first and the small C helpers in bench/.
--quick uses fewer repetitions (for a smoke run); the README's figures come from a full run.
"""
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PILOT = os.path.join(ROOT, "target/x86_64-unknown-linux-musl/release/pilot")
QUICK = "--quick" in sys.argv
WORK = tempfile.mkdtemp(prefix="pilot-bench-")


def build():
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--target", "x86_64-unknown-linux-musl"],
        cwd=ROOT,
        check=True,
    )
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


def idle_cpu():
    """The job engine at rest: pilot as PID 1 supervising one long-running job."""
    window = 10 if QUICK else 60
    config = write_config("idle.json5", '{ consul: "127.0.0.1:1", jobs: [{ name: "app", exec: ["sleep", "100000"] }] }')
    outer = subprocess.Popen(pid1("-config", config), stdout=subprocess.DEVNULL)
    try:
        pilot = wait_for_child(outer.pid)
        time.sleep(1)
        before = cpu_seconds(pilot)
        time.sleep(window)
        used = cpu_seconds(pilot) - before
    finally:
        os.kill(pilot, 15)
        outer.wait()
    return [("idle CPU, job engine (one job, no health check)", f"{used:.2f} s CPU over {window} s ({used / window * 100:.2f} %)", "")]


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
    for figure in (binary_size, resident_memory, exec_latency, start_to_first_job, shutdown_latency, reaping_rate, idle_cpu):
        rows.extend(figure())
    print(f"Measured {time.strftime('%Y-%m-%d')} on {machine()}{' (quick run)' if QUICK else ''}.\n")
    print("| figure | pilot | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    shutil.rmtree(WORK, ignore_errors=True)


main()
