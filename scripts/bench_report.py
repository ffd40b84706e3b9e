#!/usr/bin/env python3
"""Collects the JSON files written by scripts/bench.sh into one report.

Usage: scripts/bench_report.py <results-dir>

Reads every `*.json` in the directory (each has a "suite" field), writes
`results.json` (everything, merged), `report.md` (the side-by-side tables) and
`report.svg` (a log-scale bar chart of the protocol costs per backend), and prints the
markdown. Standard library only.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PROTOCOL_ROWS = [
    ("aux_info_3_parties", "aux info, 3 parties (fixture primes)"),
    ("aux_info_1_party", "aux info, 1 party (its own work)"),
    ("dkg_3_parties", "DKG 2-of-3, 3 parties"),
    ("full_sign_2_parties", "full signing, 2 parties"),
    ("presign_2_parties", "presignature, 2 parties"),
    ("online_sign_2_parties", "signing from a presignature"),
]
BACKENDS = [
    ("native-gmp", "native GMP"),
    ("native-rust", "native pure Rust"),
    ("wasm-chromium", "WASM, headless Chromium"),
]
COLORS = {"native-gmp": "#2b6cb0", "native-rust": "#dd6b20", "wasm-chromium": "#38a169"}


def fmt_secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def backend_key(doc: dict) -> str:
    if doc.get("platform") == "wasm-chromium":
        return "wasm-chromium"
    b = str(doc.get("backend", "")).lower()
    return "native-gmp" if ("rug" in b or "gmp" in b) else "native-rust"


def load(dirpath: Path) -> list[dict]:
    docs = []
    for p in sorted(dirpath.glob("*.json")):
        if p.name == "results.json":
            continue
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: skipping {p.name}: {e}", file=sys.stderr)
            continue
        doc["_file"] = p.name
        docs.append(doc)
    return docs


def protocol_table(docs: list[dict]) -> tuple[list[str], dict]:
    grid: dict[str, dict[str, float]] = {}
    for d in docs:
        if d.get("suite") != "protocol":
            continue
        b = backend_key(d)
        for r in d.get("rows", []):
            grid.setdefault(r["key"], {})[b] = r["seconds"]
    if not grid:
        return [], grid
    lines = [
        "## Protocol cost (all participating parties' work in one thread)",
        "",
        "| operation | " + " | ".join(label for _, label in BACKENDS) + " |",
        "|---|" + "---:|" * len(BACKENDS),
    ]
    for key, label in PROTOCOL_ROWS:
        if key not in grid:
            continue
        cells = [fmt_secs(grid[key].get(b)) for b, _ in BACKENDS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines, grid


def generic_tables(docs: list[dict]) -> list[str]:
    """Suites other than `protocol` carry a list of rows {label, value, unit?, note?}."""
    lines: list[str] = []
    for d in docs:
        suite = d.get("suite")
        if suite == "protocol":
            continue
        title = d.get("title") or suite or d["_file"]
        lines += ["", f"## {title}", ""]
        if "rows" in d and isinstance(d["rows"], list):
            lines += ["| measurement | value | note |", "|---|---:|---|"]
            for r in d["rows"]:
                v = r.get("value")
                if isinstance(v, float) and r.get("unit") == "s":
                    shown = fmt_secs(v)
                elif isinstance(v, float):
                    shown = f"{v:.3g} {r.get('unit', '')}".strip()
                else:
                    shown = f"{v} {r.get('unit', '')}".strip()
                lines.append(f"| {r.get('label', r.get('key', '?'))} | {shown} | {r.get('note', '')} |")
        else:
            lines += ["| field | value |", "|---|---:|"]
            for k, v in d.items():
                if k.startswith("_") or k == "suite":
                    continue
                if isinstance(v, float):
                    v = f"{v:.3f}"
                lines.append(f"| {k} | {v} |")
    return lines


def svg_chart(grid: dict) -> str:
    keys = [(k, label) for k, label in PROTOCOL_ROWS if k in grid]
    bar_h, gap, left, width = 14, 14, 290, 520
    present = [b for b, _ in BACKENDS if any(b in grid[k] for k, _ in keys)]
    group_h = bar_h * max(1, len(present)) + gap
    top = 60
    height = top + group_h * len(keys) + 50
    vals = [v for k, _ in keys for v in grid[k].values() if v and v > 0]
    if not vals:
        return ""
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    span = math.log10(hi) - math.log10(lo) or 1.0

    def x(v: float) -> float:
        return left + width * (math.log10(v) - math.log10(lo)) / span

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">wallet-mpc protocol cost '
        "(log scale, lower is better)</text>",
    ]
    lx = left
    for b, label in BACKENDS:
        if b not in present:
            continue
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{COLORS[b]}"/>')
        out.append(f'<text x="{lx + 16}" y="43">{label}</text>')
        lx += 40 + 7 * len(label)
    d = lo
    while d <= hi * 1.0001:
        xx = x(d)
        out.append(f'<line x1="{xx:.1f}" y1="{top - 6}" x2="{xx:.1f}" y2="{height - 40}" stroke="#ddd"/>')
        out.append(f'<text x="{xx:.1f}" y="{height - 25}" text-anchor="middle">{fmt_secs(d)}</text>')
        d *= 10
    y = top
    for k, label in keys:
        out.append(f'<text x="{left - 8}" y="{y + group_h / 2}" text-anchor="end">{label}</text>')
        yy = y
        for b in present:
            v = grid[k].get(b)
            if v and v > 0:
                w = max(1.0, x(v) - left)
                out.append(
                    f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{COLORS[b]}"/>'
                )
                out.append(f'<text x="{left + w + 4:.1f}" y="{yy + bar_h - 4}">{fmt_secs(v)}</text>')
            yy += bar_h
        y += group_h
    out.append("</svg>")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = Path(sys.argv[1])
    if not d.is_dir():
        print(f"error: {d} is not a directory", file=sys.stderr)
        return 2
    docs = load(d)
    if not docs:
        print(f"error: no benchmark JSON files in {d}", file=sys.stderr)
        return 1
    lines, grid = protocol_table(docs)
    lines += generic_tables(docs)
    md = "\n".join(["# wallet-mpc benchmark report", ""] + lines) + "\n"
    (d / "report.md").write_text(md)
    (d / "results.json").write_text(
        json.dumps([{k: v for k, v in x.items() if k != "_file"} | {"file": x["_file"]} for x in docs], indent=2)
    )
    svg = svg_chart(grid)
    if svg:
        (d / "report.svg").write_text(svg)
    print(md)
    print(f"written: {d / 'report.md'}, {d / 'results.json'}" + (f", {d / 'report.svg'}" if svg else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
