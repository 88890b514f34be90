#!/usr/bin/env python3
"""pilot's soak test: memory and descriptors must stay flat under steady churn.

usage: bench/soak.py [SECONDS]   (default 600; run as root from the repository root)

pilot runs as PID 1 of a PID namespace against the Consul double (the standalone binary), with:
- ten jobs with an exec health check every second each (ten checks a second), each a service
  registered in Consul and heartbeated;
- a watch on a service whose only instance the soak flaps between passing and critical every
  two seconds, with an onChange hook that re-renders a file with `pilot -render`;
- `pilot -putmetric` every second and `pilot -reload` every ten seconds (the config alternates
  between two versions that differ in one job, so every reload restarts that job).

It samples pilot's resident memory (VmRSS) and its open descriptors every ten seconds and prints
them, then a summary: the first sample after a one-minute warm-up, the last one, and the peak.
Exit status 1 when resident memory grew by more than 20% or descriptors by more than 10 between
the warm-up sample and the end.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PILOT = os.path.join(ROOT, "target/x86_64-unknown-linux-musl/release/pilot")
DOUBLE = os.path.join(ROOT, "target/release/consul-double")
DURATION = int(sys.argv[1]) if len(sys.argv) > 1 else 600
WARMUP = min(60, DURATION // 4)
WORK = tempfile.mkdtemp(prefix="pilot-soak-")
CONSUL = "127.0.0.1:18500"
CONTROL = "127.0.0.1:18501"
SOCKET = os.path.join(WORK, "pilot.sock")


def build():
    for args in (
        ["cargo", "build", "--quiet", "--release", "--target", "x86_64-unknown-linux-musl", "-p", "pilot"],
        ["cargo", "build", "--quiet", "--release", "-p", "consul-double"],
    ):
        subprocess.run(args, cwd=ROOT, check=True)


def config(variant):
    services = ",\n".join(
        f'''    {{ name: "svc{i}", exec: ["sleep", "100000"], port: {9000 + i}, interfaces: "static:10.0.0.{i + 1}",
      health: {{ exec: "true", interval: 1, ttl: 5 }} }}'''
        for i in range(10)
    )
    template = os.path.join(WORK, "flap.tmpl")
    rendered = os.path.join(WORK, "flap.out")
    return f'''{{
  consul: "{CONSUL}",
  control: {{ socket: "{SOCKET}" }},
  logging: {{ level: "WARN" }},
  jobs: [
{services},
    {{ name: "onchange", exec: ["{PILOT}", "-config", "{WORK}/pilot.json5", "-render", "{template}:{rendered}"],
      when: {{ source: "watch.flap", each: "changed" }} }},
    {{ name: "variant", exec: ["sleep", "{100000 + variant}"] }},
  ],
  watches: [{{ name: "flap", interval: 5 }}],
  telemetry: {{ port: 19090, interfaces: ["static:127.0.0.1"],
    metrics: [{{ namespace: "soak", name: "ticks", help: "soak ticks", type: "counter" }}] }},
}}
'''


def write_config(variant):
    path = os.path.join(WORK, "pilot.json5")
    with open(path + ".new", "w") as f:
        f.write(config(variant))
    os.replace(path + ".new", path)
    return path


def consul(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{CONSUL}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as answer:
        return answer.read()


def children_of(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(name))
            except OSError:
                pass
    return kids


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def main():
    if os.geteuid() != 0:
        sys.exit("soak.py needs root (PID namespaces)")
    build()
    with open(os.path.join(WORK, "flap.tmpl"), "w") as f:
        f.write('{{ range service "flap" }}{{ .Address }}:{{ .Port }}\n{{ end }}')
    double = subprocess.Popen(
        [DOUBLE, "--listen", CONSUL, "--control-listen", CONTROL, "--no-jitter"],
        stdout=subprocess.DEVNULL,
    )
    pilot = None
    try:
        time.sleep(1)
        consul("PUT", "/v1/agent/service/register", {
            "ID": "flap-1", "Name": "flap", "Address": "10.9.9.9", "Port": 80,
            "Check": {"TTL": "600s", "Status": "passing"},
        })
        cfg = write_config(0)
        pilot_outer = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", PILOT, "-config", cfg],
            stdout=subprocess.DEVNULL,
        )
        pilot = pilot_outer
        deadline = time.time() + 10
        while not children_of(pilot_outer.pid) and time.time() < deadline:
            time.sleep(0.05)
        pid = children_of(pilot_outer.pid)[0]
        start = time.time()
        samples = []
        tick = 0
        print(f"soak: {DURATION} s, pilot pid {pid}; seconds, VmRSS KiB, open fds", flush=True)
        while time.time() - start < DURATION:
            tick += 1
            if tick % 2 == 0:
                state = "pass" if (tick // 2) % 2 == 0 else "fail"
                consul("PUT", f"/v1/agent/check/{state}/service:flap-1")
            subprocess.run([PILOT, "-config", cfg, "-putmetric", "soak_ticks=1"], stdout=subprocess.DEVNULL, check=True)
            if tick % 10 == 0:
                write_config(tick // 10 % 2)
                subprocess.run([PILOT, "-config", cfg, "-reload"], stdout=subprocess.DEVNULL, check=True)
                rss, fds = sample(pid)
                elapsed = int(time.time() - start)
                samples.append((elapsed, rss, fds))
                print(f"{elapsed:6d} {rss:8d} {fds:4d}", flush=True)
            time.sleep(max(0.0, start + tick - time.time()))
        warm = next((s for s in samples if s[0] >= WARMUP), samples[0])
        last = samples[-1]
        peak_rss = max(s[1] for s in samples)
        peak_fds = max(s[2] for s in samples)
        print(
            f"\nsoak summary: after warm-up ({warm[0]} s) {warm[1] / 1024:.2f} MB RSS, {warm[2]} fds; "
            f"at the end ({last[0]} s) {last[1] / 1024:.2f} MB RSS, {last[2]} fds; "
            f"peak {peak_rss / 1024:.2f} MB RSS, {peak_fds} fds; "
            f"{tick} putmetrics, {tick // 10} reloads, {tick // 2} flaps, {10 * int(last[0])} health checks"
        )
        grew = last[1] > warm[1] * 1.2 or last[2] > warm[2] + 10
        os.kill(pid, 15)
        pilot_outer.wait(timeout=30)
        sys.exit(1 if grew else 0)
    finally:
        if pilot is not None and pilot.poll() is None:
            for child in children_of(pilot.pid):
                os.kill(child, 9)
        double.terminate()
        double.wait()
        shutil.rmtree(WORK, ignore_errors=True)


main()
