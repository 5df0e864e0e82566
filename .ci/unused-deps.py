#!/usr/bin/env python3
"""Fails when Cargo.toml declares a dependency nothing uses.

A crate counts as used when its name (with `-` as `_`) appears as a path
(`name::`, `use name`, `name!`) in the code that can use it: src/ for
[dependencies], src/ tests/ benches/ for [dev-dependencies]. A crate kept
only for its features (or for another reason the code cannot show) says so
in a comment on the line right above it that contains "kept for".
Like cargo-machete, without building anything or fetching a tool.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
lines = (root / "Cargo.toml").read_text().splitlines()

def sources(dirs):
    text = []
    for d in dirs:
        for p in (root / d).rglob("*.rs"):
            text.append(p.read_text(errors="replace"))
    return "\n".join(text)

code = {"dependencies": sources(["src"]), "dev-dependencies": sources(["src", "tests", "benches"])}
section = None
unused = []
for i, line in enumerate(lines):
    m = re.match(r"^\[(.+)\]\s*$", line)
    if m:
        section = m.group(1)
        continue
    if section not in code:
        continue
    m = re.match(r"^([A-Za-z0-9_-]+)\s*=", line)
    if not m:
        continue
    name = m.group(1)
    ident = name.replace("-", "_")
    if i > 0 and "kept for" in lines[i - 1] and lines[i - 1].lstrip().startswith("#"):
        continue
    pattern = re.compile(r"\b" + re.escape(ident) + r"\s*(::|!)|\buse\s+" + re.escape(ident) + r"\b")
    if not pattern.search(code[section]):
        unused.append(f"{section}: {name}")

if unused:
    print("Cargo.toml declares dependencies nothing uses (remove them, or say why above them with a comment containing 'kept for'):")
    for u in unused:
        print("  " + u)
    sys.exit(1)
print("every declared dependency is used")
