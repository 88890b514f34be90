#!/usr/bin/env python3
"""Runs `pilot -validate` over a corpus of ContainerPilot configs and compares each verdict with
ContainerPilot 3.8's.

    scripts/corpus-check.py [--pilot BIN] [--verbose] CORPUS_DIR

CORPUS_DIR holds the configs, `EXPECTED.tsv` (file, environment, ContainerPilot's verdict:
`accepted` or `rejected(...)`, its output) and `default.env` (one NAME=value a line). Each
environment starts from `env -i PATH=/usr/bin:/bin HOSTNAME=vm` plus `default.env`; `agent` adds
CONSUL_AGENT=1 and `acme` adds ACME_DOMAIN=example.com.

pilot's verdict is `accepted` when `-validate` exits 0 (warnings allowed), `rejected` when it exits
2; any other exit status (a crash, a usage error) is a failure of its own. Prints the figures (configs
and config x environment pairs that get ContainerPilot's verdict) and every mismatch; exits 1 when
any pair differs.
"""

import argparse
import os
import subprocess
import sys

EXTRA = {
    "default": {},
    "agent": {"CONSUL_AGENT": "1"},
    "acme": {"ACME_DOMAIN": "example.com"},
}


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition("=")
            env[name] = value
    return env


def read_expected(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            cols = line.rstrip("\n").split("\t")
            verdict = "accepted" if cols[2] == "accepted" else "rejected"
            rows.append((cols[0], cols[1], verdict))
    return rows


def validate(pilot, config, env):
    proc = subprocess.run(
        [pilot, "-validate", "-config", config],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    verdict = {0: "accepted", 2: "rejected"}.get(proc.returncode, f"exit {proc.returncode}")
    return verdict, proc.stdout + proc.stderr


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--pilot", default=os.path.join(here, "..", "target", "debug", "pilot"))
    parser.add_argument("--verbose", action="store_true", help="print pilot's output on a mismatch")
    args = parser.parse_args()

    base = {"PATH": "/usr/bin:/bin", "HOSTNAME": "vm"}
    base.update(read_env(os.path.join(args.corpus, "default.env")))
    pilot = os.path.abspath(args.pilot)

    pairs = matched = 0
    per_config = {}
    for name, environment, expected in read_expected(os.path.join(args.corpus, "EXPECTED.tsv")):
        env = dict(base)
        env.update(EXTRA[environment])
        got, output = validate(pilot, os.path.join(args.corpus, name), env)
        pairs += 1
        ok = got == expected
        matched += ok
        per_config[name] = per_config.get(name, True) and ok
        if not ok:
            print(f"MISMATCH {name} [{environment}]: ContainerPilot {expected}, pilot {got}")
            if args.verbose:
                print("    " + output.strip().replace("\n", "\n    "))

    configs_ok = sum(per_config.values())
    print(
        f"{configs_ok}/{len(per_config)} configs and {matched}/{pairs} config x environment pairs "
        "get ContainerPilot 3.8's verdict"
    )
    return 0 if matched == pairs else 1


if __name__ == "__main__":
    sys.exit(main())
