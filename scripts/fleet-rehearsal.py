#!/usr/bin/env python3
"""Writes a 200-source, 10,000-account plan and a whm-sim scenario for it
into DIR, for looking at ferry at fleet scale (docs/report-fleet.png):

    python3 scripts/fleet-rehearsal.py /tmp/fleet
    cd /tmp/fleet && WHM_TOKEN=x SSH_PW=y ferry apply --simulate=fleet200.scenario.yaml fleet200.yaml
    ferry report fleet200.yaml --journal .ferry/fleet200.simulate.journal --html report.html

Sizes are long-tailed (50 MB to 800 MB, one 8 GB account on every tenth
source) and given as hints in the plan; the target restores 24 at a time at
25 MB/s, and a simulated hour passes in 14.4 s (`time_scale` 0.004).
"""
import random
import sys
from pathlib import Path

SOURCES, PER_SOURCE = 200, 50


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    plan = [
        "version: 1",
        "name: fleet200",
        "target:",
        "  url: https://whm.example.net:2087",
        "  token: {env: WHM_TOKEN}",
        "defaults:",
        "  session: {transfer_threads: 3, restore_threads: 3}",
        "sources:",
    ]
    scenario = [
        "hostname: whm.example.net",
        "tls: self_signed",
        "time_scale: 0.004",
        "target: {max_restores: 24, restore_rate: 25MB}",
        "remotes:",
    ]
    for s in range(1, SOURCES + 1):
        name, host = f"old{s:03}", f"old{s:03}.example.com"
        plan += [
            f"  - name: {name}",
            f"    host: {host}",
            "    ssh: {user: root, password: {env: SSH_PW}}",
            "    accounts:",
        ]
        scenario += [f"  - host: {host}", "    transfer_rate: 100MB", "    accounts:"]
        for i in range(PER_SOURCE):
            size = rng.choice([50, 100, 200, 300, 500, 800]) * 1_000_000
            if i == 0 and s % 10 == 0:
                size = 8_000_000_000
            user = f"s{s:03}u{i:02}"
            plan.append(f"      - {{user: {user}, size: {size}}}")
            scenario.append(f"      - {{user: {user}, domain: {user}.example.com, size: {size}}}")
    plan += [
        "policy:",
        "  on_error: continue",
        "concurrency:",
        "  target_sessions: 12",
        "  source_sessions: 1",
        "  batch_size: 25",
    ]
    (out / "fleet200.yaml").write_text("\n".join(plan) + "\n")
    (out / "fleet200.scenario.yaml").write_text("\n".join(scenario) + "\n")


if __name__ == "__main__":
    main()
