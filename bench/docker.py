#!/usr/bin/env python3
"""The hello-world example in the machine's Docker engine, measured: prints a Markdown table.

usage: bench/docker.py [--stops N]

Run it as root from anywhere, on a machine with a Docker engine and docker-compose. It runs
scripts/docker-images.sh (the base image is made once, then cached), starts the example as a
compose project of its own (`pilot-bench-PID`, with docker-compose.double.yml: the Consul double
stands in for hashicorp/consul, which a machine without a registry cannot pull), on free
loopback ports, and measures:

- `docker-compose scale hello=10 world=6` to all 16 instances passing in Consul, and to nginx
  listing all 16 upstreams (from the moment the command starts: the containers are created by
  it);
- `docker-compose scale hello=3` to Consul listing 3 hello instances, and to nginx's upstreams
  listing those 3 (from the moment the command starts: stopping the 7 is part of it);
- `docker stop` to the container's exit, for N world instances in turn (Docker's default 10 s
  before SIGKILL), with the exit statuses;
- the images' sizes.

Everything it made is removed at the end (the base image and the pilot and double images are
kept: they are the script's cache).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples/hello-world")
PROJECT = f"pilot-bench-{os.getpid()}"
SCRATCH = f"pilot-bench-scratch:{os.getpid()}"
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PATIENCE = 300.0


def compose(*args, check=True):
    env = dict(os.environ, NGINX_PORT="127.0.0.1:0", CONSUL_PORT="127.0.0.1:0")
    cmd = ["docker-compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f", "docker-compose.double.yml", *args]
    return subprocess.run(cmd, cwd=EXAMPLE, env=env, check=check, capture_output=True, text=True).stdout


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def get(addr, path):
    try:
        with HTTP.open(f"http://{addr}{path}", timeout=10) as res:
            return res.read().decode()
    except OSError:
        return None


def passing(consul, service):
    body = get(consul, f"/v1/health/service/{service}?passing")
    return None if body is None else len(json.loads(body))


def upstreams(nginx):
    body = get(nginx, "/upstreams") or ""
    return {words[0]: len(words) - 1 for words in (l.split() for l in body.splitlines()) if words}


def compose_async(*args):
    """Starts a docker-compose command and returns it: the measuring goes on while it runs."""
    env = dict(os.environ, NGINX_PORT="127.0.0.1:0", CONSUL_PORT="127.0.0.1:0")
    cmd = ["docker-compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f", "docker-compose.double.yml", *args]
    return subprocess.Popen(cmd, cwd=EXAMPLE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finished(proc):
    if proc.wait() != 0:
        sys.exit(f"docker.py: {proc.args} failed")
    return time.monotonic()


def until(what, check, step=0.02):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(step)
    sys.exit(f"docker.py: timed out waiting for {what}")


def ms(seconds):
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def size(image):
    return int(docker("image", "inspect", "-f", "{{.Size}}", image))


def mb(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = next(int(l.split()[1]) for l in f if l.startswith("MemTotal")) / 1024 / 1024
    engine = docker("version", "--format", "{{.Server.Version}}")
    driver = docker("info", "--format", "{{.Driver}}")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}, Docker Engine {engine} ({driver})"


def main():
    stops = int(sys.argv[sys.argv.index("--stops") + 1]) if "--stops" in sys.argv else 5
    subprocess.run([os.path.join(ROOT, "scripts/docker-images.sh")], check=True)
    rows = []
    try:
        compose("up", "-d", "--build")
        consul = compose("port", "consul", "8500").strip()
        nginx = compose("port", "nginx", "80").strip()
        until("Consul", lambda: passing(consul, "nginx") == 1)

        start = time.monotonic()
        scale = compose_async("scale", "hello=10", "world=6")
        in_consul = until("16 passing", lambda: passing(consul, "hello") == 10 and passing(consul, "world") == 6)
        in_nginx = until("nginx's 16 upstreams", lambda: upstreams(nginx) == {"hello": 10, "world": 6})
        returned = finished(scale)
        rows.append((
            "`scale hello=10 world=6` to all 16 instances passing in Consul",
            f"{ms(in_consul - start)} (the command itself: {ms(returned - start)}; nginx lists all 16 after {ms(in_nginx - start)})",
        ))

        start = time.monotonic()
        scale = compose_async("scale", "hello=3")
        in_consul = until("3 hello in Consul", lambda: passing(consul, "hello") == 3)
        in_nginx = until("3 hello upstreams", lambda: upstreams(nginx).get("hello") == 3)
        returned = finished(scale)
        rows.append((
            "`scale hello=3` to Consul and nginx listing 3 hello instances",
            f"Consul {ms(in_consul - start)}, nginx {ms(in_nginx - start)} (the command, which stops and removes 7 containers: {ms(returned - start)})",
        ))

        ids = compose("ps", "-q", "world").split()[:stops]
        took, codes = [], []
        for cid in ids:
            start = time.monotonic()
            docker("stop", cid)
            took.append(time.monotonic() - start)
            codes.append(docker("inspect", "-f", "{{.State.ExitCode}}", cid))
        rows.append((
            f"`docker stop` of a world instance to its exit ({len(ids)} in turn)",
            f"median {ms(statistics.median(took))}, max {ms(max(took))}; exit status {', '.join(sorted(set(codes)))}",
        ))

        images = [("debian:bookworm-slim", "base image (debootstrap minbase, slimmed)")]
        images += [(f"{PROJECT}_{s}", f"example's {s} image (Debian's {'nginx' if s == 'nginx' else 'nodejs'} + pilot)") for s in ("nginx", "hello", "world")]
        images += [("pilot:latest", "pilot image (FROM scratch, the static binary)")]
        subprocess.run(["docker", "build", "-q", "-t", SCRATCH, os.path.join(ROOT, "examples/scratch")], check=True, capture_output=True)
        images += [(SCRATCH, "examples/scratch image (FROM scratch: pilot and a static C program)")]
        images += [("pilot-consul-double:latest", "Consul double image (FROM scratch, test tool)")]
        for image, what in images:
            rows.append((f"image size: {what}", mb(size(image))))
    finally:
        compose("down", "--volumes", "--remove-orphans", "--rmi", "local", "--timeout", "5", check=False)
        subprocess.run(["docker", "rmi", "-f", SCRATCH], capture_output=True)

    print(f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.\n")
    print("| figure | measured |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
