#!/usr/bin/env python3
"""The hello-world demo without Docker: Consul, nginx, hello x10 and world x6 on one machine.

Every instance is a real `pilot` running as PID 1 in its own PID, UTS (host name), mount and
network namespace, with its own address on a private bridge: the same topology as
docker-compose, with the Consul test double (crates/consul-double) standing in for Consul and
nginx and node from Debian's packages. The pilot configs are the Docker ones; the environment
points them at this machine's paths (CONSUL, APP_DIR, NGINX_*).

    run-local.py up [--hello 10] [--world 6]   # as root; stays in the foreground until Ctrl-C
    run-local.py scale hello=3 world=8         # from another terminal, while `up` runs
    run-local.py status                        # the instances, their addresses and pids
    run-local.py down                          # stop it, and remove whatever a crash left

`up` builds pilot and the double with cargo (unless given --pilot and --double), installs
nginx, nodejs, iproute2 and util-linux from Debian when they are missing, prints the URL of
the page, and removes every namespace, link, process and file it made when it stops. Each
instance's /run is a directory of the state directory (/run/pilot-hello-world/PREFIX/run/NAME),
so its control socket and nginx's rendered config can be read from outside; logs are in
.../logs/NAME.log.
"""

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE_ROOT = Path("/run/pilot-hello-world")
CONSUL_PORT = 8500
# How long a pilot may take to stop after SIGTERM before its namespace is killed (its
# stopTimeout is 5 s).
STOP_GRACE = 15.0
# How long the topology may take to become healthy before `up` or `scale` gives up.
READY_TIMEOUT = 120.0
# The scalable services: their pilot config, port, and one letter for link names (at most 15
# characters, so the host side of a veth is PREFIX-LETTER-INDEX, such as phw-h10).
APPS = {
    "hello": {"config": HERE / "hello" / "pilot.json5", "port": 3001, "letter": "h"},
    "world": {"config": HERE / "world" / "pilot.json5", "port": 3002, "letter": "w"},
}
# Direct HTTP, whatever proxy the environment names: every address here is on the bridge.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(message):
    print(f"run-local: {message}", flush=True)


class Failure(Exception):
    """An error that ends the command with a one-line message."""


def run(*args, check=True, quiet=False):
    """Runs a command to completion; with check, a failure raises with its stderr."""
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise Failure(f"{' '.join(map(str, args))}: {result.stderr.strip() or result.returncode}")
    if not quiet and result.returncode != 0:
        log(f"note: {' '.join(map(str, args))}: {result.stderr.strip()}")
    return result


def http_get(url, timeout=2.0):
    """The body of a 200 answer, or None."""
    try:
        with HTTP.open(url, timeout=timeout) as answer:
            return answer.read().decode()
    except (urllib.error.URLError, OSError, ValueError):
        return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children_of(parent):
    """Pids whose parent is `parent`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def describe_status(code):
    if code is None:
        return "running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    if code > 128 and code - 128 in signal.valid_signals():
        return f"exit status {code} ({signal.Signals(code - 128).name})"
    return f"exit status {code}"


# --- names -----------------------------------------------------------------------------------


class Names:
    """Everything a run makes is named after its prefix, so that `down` finds it after a crash."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.bridge = f"{prefix}-br"
        self.state = STATE_ROOT / prefix

    def netns(self, name):
        return f"{self.prefix}-{name}"

    def veth(self, letter, index):
        return f"{self.prefix}-{letter}{index or ''}"

    def owns_netns(self, netns):
        return netns.startswith(self.prefix + "-")

    def owns_link(self, link):
        return link.startswith(self.prefix + "-")


# --- clean-up (also after a crash) -----------------------------------------------------------


def list_netns():
    out = run("ip", "netns", "list", check=False, quiet=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links():
    out = run("ip", "-o", "link", "show", check=False, quiet=True).stdout
    links = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            links.append(parts[1].strip().split("@")[0])
    return links


def netns_pids(netns):
    out = run("ip", "netns", "pids", netns, check=False, quiet=True).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def forward_rule(bridge):
    """The iptables rule that lets the bridge's members talk to each other. Docker sets the FORWARD
    policy to DROP and loads br_netfilter, so without it frames between two namespaces on a plain
    Linux bridge are dropped once Docker has run on the machine."""
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def allow_forwarding(bridge):
    if shutil.which("iptables", path=system_path()) is None:
        return
    if run("iptables", "-w", "-C", *forward_rule(bridge), check=False, quiet=True).returncode != 0:
        run("iptables", "-w", "-I", *forward_rule(bridge))


def remove_forwarding(bridge):
    """Deletes the bridge's rule (every copy of it). Returns whether there was one."""
    if shutil.which("iptables", path=system_path()) is None:
        return False
    removed = False
    while run("iptables", "-w", "-D", *forward_rule(bridge), check=False, quiet=True).returncode == 0:
        removed = True
    return removed


def sweep(names, grace=5.0):
    """Removes whatever is left of a run with this prefix: its processes (SIGTERM, then SIGKILL
    after `grace`), namespaces, links and state directory. Returns what it removed."""
    removed = []
    spaces = [ns for ns in list_netns() if names.owns_netns(ns)]
    pids = {pid for ns in spaces for pid in netns_pids(ns)}
    if pids:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.05)
        removed.append(f"{len(pids)} processes")
    for link in list_links():
        if names.owns_link(link):
            run("ip", "link", "del", link, check=False, quiet=True)
            removed.append(f"link {link}")
    for ns in spaces:
        run("ip", "netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    if remove_forwarding(names.bridge):
        removed.append(f"iptables rule for {names.bridge}")
    if names.state.exists():
        shutil.rmtree(names.state, ignore_errors=True)
        removed.append(f"directory {names.state}")
    try:
        STATE_ROOT.rmdir()
    except OSError:
        pass
    return removed


# --- set-up ----------------------------------------------------------------------------------


def install_missing(install=True):
    """Installs nginx, node, ip and unshare from Debian's packages when they are missing."""
    wanted = {"nginx": "nginx", "node": "nodejs", "ip": "iproute2", "unshare": "util-linux"}
    missing = [pkg for cmd, pkg in wanted.items() if shutil.which(cmd, path=system_path()) is None]
    if not missing:
        return
    if not install:
        raise Failure(f"missing Debian packages: {' '.join(missing)} (without --no-install, `up` installs them)")
    log(f"installing {' '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        if subprocess.run(args, env=env, stdin=subprocess.DEVNULL).returncode != 0:
            raise Failure(f"{' '.join(args)} failed")


def system_path():
    return os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def build():
    """Builds pilot (release) and the Consul double (debug: it is a test tool) with cargo."""
    cargo = shutil.which("cargo") or shutil.which("cargo", path=str(Path.home() / ".cargo/bin"))
    if cargo is None:
        raise Failure("cargo not found: install Rust, or give --pilot and --double")
    for args in (
        [cargo, "build", "--release", "--bin", "pilot"],
        [cargo, "build", "-p", "consul-double", "--bin", "consul-double"],
    ):
        log(" ".join(["cargo", *args[1:]]))
        if subprocess.run(args, cwd=REPO, stdin=subprocess.DEVNULL).returncode != 0:
            raise Failure("the build failed")
    return target_dir() / "release" / "pilot", target_dir() / "debug" / "consul-double"


class Instance:
    """One member of the topology: a network namespace with its veth, and the process in it."""

    def __init__(self, service, index, ip, names, letter):
        self.service = service
        self.index = index
        self.name = f"{service}-{index}" if index else service
        self.ip = ip
        self.netns = names.netns(self.name)
        self.veth = names.veth(letter, index)
        self.rundir = names.state / "run" / self.name
        self.log = names.state / "logs" / f"{self.name}.log"
        self.proc = None
        # pilot's pid as this machine sees it (PID 1 in its own namespace).
        self.pid = None

    def to_json(self):
        return {
            "name": self.name,
            "service": self.service,
            "ip": self.ip,
            "netns": self.netns,
            "pid": self.pid,
            "rundir": str(self.rundir),
            "log": str(self.log),
        }


class Topology:
    def __init__(self, names, subnet, pilot, double):
        self.names = names
        self.net = ipaddress.ip_network(subnet)
        if self.net.prefixlen > 24 or self.net.version != 4:
            raise Failure(f"--subnet {subnet}: an IPv4 network of at least 256 addresses, please")
        hosts = list(self.net.hosts())
        self.host_ip = str(hosts[0])
        self.pool = [str(a) for a in hosts[1:254]]
        self.pilot = Path(pilot).resolve()
        self.double = Path(double).resolve()
        self.consul = None
        self.nginx = None
        self.apps = {name: [] for name in APPS}
        self.lock = threading.RLock()
        self.stopping = False

    # -- addresses and state --

    @property
    def consul_addr(self):
        return f"{self.consul.ip}:{CONSUL_PORT}"

    @property
    def url(self):
        return f"http://{self.nginx.ip}/"

    def instances(self):
        members = [self.consul, self.nginx, *self.apps["hello"], *self.apps["world"]]
        return [m for m in members if m is not None]

    def free_ip(self):
        used = {m.ip for m in self.instances()}
        for ip in self.pool[8:]:
            if ip not in used:
                return ip
        raise Failure("no address left in the subnet")

    def save(self):
        state = {
            "prefix": self.names.prefix,
            "runner_pid": os.getpid(),
            "subnet": str(self.net),
            "bridge": self.names.bridge,
            "host_ip": self.host_ip,
            "consul": f"http://{self.consul_addr}" if self.consul else None,
            "url": self.url if self.nginx else None,
            "instances": [m.to_json() for m in self.instances()],
        }
        tmp = self.names.state / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.rename(self.names.state / "state.json")

    # -- network --

    def make_bridge(self):
        run("ip", "link", "add", self.names.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.host_ip}/{self.net.prefixlen}", "dev", self.names.bridge)
        run("ip", "link", "set", self.names.bridge, "up")
        allow_forwarding(self.names.bridge)

    def make_netns(self, inst):
        """A namespace whose only link is `eth0` on the bridge (pilot's default interface)."""
        run("ip", "netns", "add", inst.netns)
        run("ip", "link", "add", inst.veth, "type", "veth", "peer", "name", "eth0", "netns", inst.netns)
        run("ip", "link", "set", inst.veth, "master", self.names.bridge, "up")
        run("ip", "-n", inst.netns, "addr", "add", f"{inst.ip}/{self.net.prefixlen}", "dev", "eth0")
        run("ip", "-n", inst.netns, "link", "set", "eth0", "up")
        run("ip", "-n", inst.netns, "link", "set", "lo", "up")

    def remove_netns(self, inst):
        run("ip", "link", "del", inst.veth, check=False, quiet=True)
        run("ip", "netns", "del", inst.netns, check=False, quiet=True)
        shutil.rmtree(inst.rundir, ignore_errors=True)

    # -- processes --

    def start_consul(self):
        inst = Instance("consul", 0, self.pool[0], self.names, "c")
        self.make_netns(inst)
        inst.rundir.mkdir(parents=True, exist_ok=True)
        with open(inst.log, "ab") as out:
            inst.proc = subprocess.Popen(
                # A dev agent's timing, with a 1 s floor for deregisterCriticalServiceAfter
                # (Consul's is one minute) so that a killed instance leaves the catalog soon.
                ["ip", "netns", "exec", inst.netns, str(self.double),
                 "--listen", f"{inst.ip}:{CONSUL_PORT}",
                 "--no-jitter", "--dcsa-floor", "1s", "--reap-interval", "1s"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        inst.pid = inst.proc.pid
        self.consul = inst
        deadline = time.monotonic() + 30
        while (http_get(f"http://{self.consul_addr}/_double/health") or "").strip() != "ok":
            if inst.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"the Consul double did not start; see {inst.log}")
            time.sleep(0.05)
        log(f"consul   http://{self.consul_addr} (the Consul double), namespace {inst.netns}")

    def start_pilot(self, inst, config, env):
        """Starts pilot as PID 1 of new PID, UTS and mount namespaces inside the instance's
        network namespace, with the instance's name as host name and its own /run."""
        self.make_netns(inst)
        inst.rundir.mkdir(parents=True, exist_ok=True)
        # `pilot` on the instance's PATH, as in the images (/run is the instance's own).
        (inst.rundir / "bin").mkdir(exist_ok=True)
        (inst.rundir / "bin" / "pilot").symlink_to(self.pilot)
        env = {
            "PATH": "/run/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "CONSUL": self.consul_addr,
            **env,
        }
        with open(inst.log, "ab") as out:
            inst.proc = subprocess.Popen(
                ["ip", "netns", "exec", inst.netns,
                 "unshare", "--pid", "--uts", "--mount", "--fork", "--mount-proc", "--kill-child",
                 "sh", "-c", 'echo "$1" >/proc/sys/kernel/hostname && mount --bind "$2" /run && exec pilot -config "$3"',
                 "sh", inst.name, str(inst.rundir), str(config)],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while inst.pid is None:
            kids = children_of(inst.proc.pid)
            if kids:
                inst.pid = kids[0]
            elif inst.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"{inst.name} did not start; see {inst.log}")
            else:
                time.sleep(0.01)

    def start_nginx(self):
        inst = Instance("nginx", 0, self.pool[1], self.names, "n")
        self.nginx = inst
        html = inst.rundir / "html"
        # nginx's workers run as an unprivileged user, which may not read the repository.
        inst.rundir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(HERE / "nginx" / "html", html)
        user = "www-data" if run("id", "-u", "www-data", check=False, quiet=True).returncode == 0 else "nobody nogroup"
        self.start_pilot(inst, HERE / "nginx" / "pilot.json5", {
            "NGINX_TEMPLATE": str(HERE / "nginx" / "nginx.conf.tmpl"),
            "NGINX_CONF": "/run/nginx.conf",
            "NGINX_HTML": "/run/html",
            "NGINX_TEMP": "/run",
            "NGINX_USER": user,
        })
        self.save()
        log(f"nginx    {self.url} (pid {inst.pid}), namespace {inst.netns}")

    def start_app(self, service):
        used = {m.index for m in self.apps[service]}
        index = next(i for i in range(1, 10000) if i not in used)
        inst = Instance(service, index, self.free_ip(), self.names, APPS[service]["letter"])
        self.apps[service].append(inst)
        self.apps[service].sort(key=lambda m: m.index)
        try:
            self.start_pilot(inst, APPS[service]["config"], {"APP_DIR": str(HERE / "node")})
        except BaseException:
            self.apps[service].remove(inst)
            if inst.proc is not None:
                self.stop([inst])
            self.remove_netns(inst)
            raise
        finally:
            self.save()
        return inst

    def stop(self, members):
        """SIGTERM to each pilot (it deregisters, stops its jobs and exits); SIGKILL to the ones
        still there after STOP_GRACE. Then their namespaces are removed."""
        for inst in members:
            if inst.proc is not None and inst.proc.poll() is None and inst.pid:
                try:
                    os.kill(inst.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE
        for inst in members:
            if inst.proc is None:
                continue
            try:
                inst.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{inst.name} did not stop within {STOP_GRACE:.0f} s: killing it")
                for pid in [inst.pid, *netns_pids(inst.netns)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, TypeError):
                        pass
                inst.proc.wait()
        for inst in members:
            self.remove_netns(inst)

    # -- health --

    def passing(self, service):
        body = http_get(f"http://{self.consul_addr}/v1/health/service/{service}?passing")
        if body is None:
            return None
        return {entry["Service"]["ID"] for entry in json.loads(body)}

    def upstreams(self):
        """nginx's upstreams as it answers them: {"hello": [...], "world": [...]}."""
        body = http_get(self.url + "upstreams")
        if body is None:
            return None
        lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in body.splitlines())
        return {name: lines.get(name, "").split() for name in APPS}

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until every instance is passing in Consul and in nginx's upstreams."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                want = {s: {f"{m.ip}:{APPS[s]['port']}" for m in self.apps[s]} for s in APPS}
            ups = self.upstreams()
            counts = {s: len(self.passing(s) or ()) for s in APPS}
            if ups is not None and all(set(ups[s]) == want[s] for s in APPS) and self.passing("nginx"):
                return
            if time.monotonic() > deadline:
                raise Failure(
                    f"not ready after {timeout:.0f} s: passing in Consul {counts}, "
                    f"nginx upstreams {ups}; logs in {self.names.state / 'logs'}"
                )
            if self.stopping:
                raise Failure("stopped")
            time.sleep(0.1)

    # -- scaling and supervision --

    def scale(self, service, count):
        """Starts or stops instances of `service` until it has `count`; says what it did."""
        with self.lock:
            have = self.apps[service]
            if count > len(have):
                started = [self.start_app(service) for _ in range(count - len(have))]
                what = f"{service}: started {', '.join(m.name for m in started)}"
            elif count < len(have):
                gone = have[count:]
                self.apps[service] = have[:count]
                self.stop(gone)
                self.save()
                what = f"{service}: stopped {', '.join(m.name for m in gone)}"
            else:
                what = f"{service}: already {count}"
        log(what)
        return what

    def reap(self):
        """Notices instances that exited by themselves (or were killed) and removes them."""
        with self.lock:
            for service, members in self.apps.items():
                for inst in list(members):
                    code = inst.proc.poll()
                    if code is not None:
                        # The status is unshare's: pilot's own when it exited, 1 when it was
                        # killed by SIGKILL (which unshare cannot pass on).
                        log(f"{inst.name} exited (unshare: {describe_status(code)}); see {inst.log}")
                        members.remove(inst)
                        self.remove_netns(inst)
                        self.save()
            for inst in (self.nginx, self.consul):
                if inst and inst.proc.poll() is not None and not getattr(inst, "reported", False):
                    inst.reported = True
                    log(f"{inst.name} exited ({describe_status(inst.proc.returncode)}); see {inst.log}")

    def shutdown(self):
        """Stops everything in order and says what, if anything, is left in Consul."""
        self.stopping = True
        with self.lock:
            members = [m for m in [self.nginx, *self.apps["hello"], *self.apps["world"]] if m]
            if members:
                log(f"stopping {len(members)} pilots")
                self.stop(members)
            self.apps = {name: [] for name in APPS}
            self.nginx = None
            if self.consul is not None:
                left = http_get(f"http://{self.consul_addr}/v1/agent/services")
                if left is None:
                    log("consul: no answer, cannot tell what is registered")
                elif json.loads(left):
                    log(f"consul: registrations left: {', '.join(sorted(json.loads(left)))}")
                else:
                    log("consul: no registration left")
                self.stop([self.consul])
                self.consul = None
            run("ip", "link", "del", self.names.bridge, check=False, quiet=True)
            remove_forwarding(self.names.bridge)


# --- the control socket of a running `up` ----------------------------------------------------


def serve_control(topology, path):
    """Answers `scale` requests from other terminals: one JSON object per connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(8)

    def handle(conn):
        with conn, conn.makefile("rw") as f:
            try:
                request = json.loads(f.readline())
                for service, count in request["scale"].items():
                    if service not in APPS or not isinstance(count, int) or count < 0:
                        raise Failure(f"cannot scale {service!r} to {count!r}")
                for service, count in request["scale"].items():
                    f.write(json.dumps({"message": topology.scale(service, count)}) + "\n")
                    f.flush()
                if request.get("wait", True):
                    topology.wait_ready()
                    f.write(json.dumps({"message": "ready: nginx's upstreams match"}) + "\n")
                f.write(json.dumps({"ok": True}) + "\n")
            except Exception as e:  # noqa: BLE001 - every failure is answered
                f.write(json.dumps({"ok": False, "error": str(e)}) + "\n")

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock


# --- commands --------------------------------------------------------------------------------


def running_runner(names):
    try:
        state = json.loads((names.state / "state.json").read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("runner_pid")
    return pid if pid and pid_alive(pid) and pid != os.getpid() else None


def cmd_up(args):
    names = Names(args.prefix)
    if running_runner(names):
        raise Failure(f"already running (prefix {args.prefix}): use `scale`, `status` or `down`")
    left = sweep(names)
    if left:
        log(f"removed what an earlier run left: {', '.join(left)}")
    install_missing(install=not args.no_install)
    if args.pilot and args.double:
        pilot, double = args.pilot, args.double
    else:
        pilot, double = build()
        pilot, double = args.pilot or pilot, args.double or double
    for path in (pilot, double):
        if not os.access(path, os.X_OK):
            raise Failure(f"{path}: not an executable")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    names.state.mkdir(parents=True)
    (names.state / "logs").mkdir()
    (names.state / "run").mkdir()
    topology = Topology(names, args.subnet, pilot, double)
    control = None
    status = 0
    try:
        topology.make_bridge()
        topology.save()
        topology.start_consul()
        topology.start_nginx()
        for service, count in (("hello", args.hello), ("world", args.world)):
            for _ in range(count):
                if stop.is_set():
                    raise Failure("interrupted")
                topology.start_app(service)
            log(f"{service:8} {count} instances started")
        control = serve_control(topology, names.state / "runner.sock")
        waiter = threading.Thread(target=lambda: stop.wait() or setattr(topology, "stopping", True))
        waiter.daemon = True
        waiter.start()
        topology.wait_ready()
        me = Path(sys.argv[0])
        log(f"ready: {topology.url}  (hello x{len(topology.apps['hello'])}, world x{len(topology.apps['world'])})")
        log(f"  scale:  {me} scale hello=3 world=2")
        log(f"  status: {me} status        logs: {names.state / 'logs'}")
        log("  stop:   Ctrl-C here, or `down`")
        while not stop.wait(0.2):
            topology.reap()
    except Failure as e:
        if not stop.is_set():
            log(f"error: {e}")
            status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if control is not None:
            control.close()
        log("stopping")
        try:
            topology.shutdown()
        finally:
            if status != 0:
                kept = Path(f"/tmp/pilot-hello-world-{names.prefix}-logs")
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(names.state / "logs", kept)
                log(f"the logs are kept in {kept}")
            shutil.rmtree(names.state, ignore_errors=True)
            # Whatever escaped the orderly stop (there should be nothing).
            left = sweep(names)
            if left:
                log(f"also removed: {', '.join(left)}")
        log("stopped: no namespace, link, process or file of this run is left")
    return status


def cmd_scale(args):
    names = Names(args.prefix)
    wanted = {}
    for spec in args.specs:
        service, _, count = spec.partition("=")
        if service not in APPS or not count.isdigit():
            raise Failure(f"{spec!r}: expected SERVICE=N with SERVICE one of {', '.join(APPS)}")
        wanted[service] = int(count)
    if not running_runner(names):
        raise Failure(f"not running (prefix {args.prefix}): start it with `up`")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(names.state / "runner.sock"))
    except OSError:
        raise Failure("the runner is still starting: try again once it says ready") from None
    with sock, sock.makefile("rw") as f:
        f.write(json.dumps({"scale": wanted, "wait": not args.no_wait}) + "\n")
        f.flush()
        for line in f:
            answer = json.loads(line)
            if "message" in answer:
                print(answer["message"], flush=True)
            elif answer.get("ok"):
                return 0
            else:
                raise Failure(answer.get("error", "failed"))
    raise Failure("the runner closed the connection")


def cmd_status(args):
    names = Names(args.prefix)
    try:
        state = json.loads((names.state / "state.json").read_text())
    except OSError:
        raise Failure(f"not running (prefix {args.prefix})") from None
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    print(f"page:   {state['url']}")
    print(f"consul: {state['consul']}")
    for inst in state["instances"]:
        print(f"  {inst['name']:10} {inst['ip']:15} pid {inst['pid']}")
    return 0


def cmd_down(args):
    names = Names(args.prefix)
    pid = running_runner(names)
    if pid:
        log(f"stopping the runner (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2 * STOP_GRACE + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    left = sweep(names)
    log(f"removed: {', '.join(left)}" if left else "nothing to remove")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", default="phw",
                        help="names of namespaces and links, and the state directory (default phw)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the demo and stay in the foreground")
    up.add_argument("--hello", type=int, default=10)
    up.add_argument("--world", type=int, default=6)
    up.add_argument("--subnet", default="10.213.0.0/24", help="the bridge's network (default 10.213.0.0/24)")
    up.add_argument("--pilot", help="use this pilot binary instead of building it")
    up.add_argument("--double", help="use this consul-double binary instead of building it")
    up.add_argument("--no-install", action="store_true", help="do not install missing packages")
    scale = sub.add_parser("scale", help="SERVICE=N ...: start or stop instances of a running demo")
    scale.add_argument("specs", nargs="+", metavar="SERVICE=N")
    scale.add_argument("--no-wait", action="store_true", help="do not wait for nginx to follow")
    status = sub.add_parser("status", help="the running instances")
    status.add_argument("--json", action="store_true")
    sub.add_parser("down", help="stop a running demo and remove whatever a crash left")
    args = parser.parse_args()
    if not args.prefix.isalnum() or len(args.prefix) > 6:
        parser.error("--prefix: 1 to 6 letters or digits")
    if os.geteuid() != 0:
        parser.error("run it as root: it makes network and PID namespaces")
    commands = {"up": cmd_up, "scale": cmd_scale, "status": cmd_status, "down": cmd_down}
    try:
        return commands[args.command](args)
    except Failure as e:
        print(f"run-local: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Before `up` takes over SIGINT (during the build) or in the other commands.
        return 130


if __name__ == "__main__":
    sys.exit(main())
