#!/usr/bin/env python3
"""Draws bench/long-run.sh's samples.csv as one SVG of four panels against elapsed time: resident memory (VmRSS, with
the budget line), disk (data folder, payment log, key tier, journal), the rate (journal records/s between samples under
load) and the machine's load average. Standard library only.

    bench/long-run-plot.py OUT/samples.csv OUT/long-run.svg [budget_mb]
"""
import csv
import sys


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    prev = None
    for r in rows:
        t = float(r["elapsed_s"])
        seq = float(r["journal_sequence"]) if r["journal_sequence"] else None
        rate = None
        if prev and r["phase"].startswith("load-") and prev["phase"] == r["phase"] and seq is not None and prev["seq"] is not None and t > prev["t"]:
            rate = (seq - prev["seq"]) / (t - prev["t"])
        out.append({"t": t, "phase": r["phase"], "seq": seq, "rate": rate,
                    "rss": float(r["rss_mb"]) if r["rss_mb"] not in ("", "0") else None,
                    "data": float(r["data_mb"]), "journal": float(r["journal_mb"]),
                    "pay": float(r["payments_cold_mb"]), "keys": float(r["keys_cold_mb"]),
                    "load": float(r["load1"])})
        prev = out[-1]
    return out


def panel(y0, h, w, x_of, series, title, unit, lines=()):
    """series: list of (name, colour, [(t, v or None)]). Returns SVG text for one panel at y0 of height h."""
    vals = [v for _, _, pts in series for _, v in pts if v is not None] + [v for _, v, _ in lines]
    top = max(vals) * 1.1 if vals and max(vals) > 0 else 1
    left, right = 70, w - 20
    s = [f'<text x="{left}" y="{y0 + 14}" font-size="13" font-weight="bold">{title}</text>']
    py0, py1 = y0 + 22, y0 + h - 20
    y_of = lambda v: py1 - (py1 - py0) * v / top
    s.append(f'<rect x="{left}" y="{py0}" width="{right - left}" height="{py1 - py0}" fill="none" stroke="#999"/>')
    for i in range(5):
        v = top * i / 4
        s.append(f'<text x="{left - 5}" y="{y_of(v) + 4:.1f}" font-size="10" text-anchor="end">{v:,.0f}</text>')
        s.append(f'<line x1="{left}" x2="{right}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" stroke="#eee"/>')
    s.append(f'<text x="12" y="{(py0 + py1) / 2:.0f}" font-size="10" transform="rotate(-90 12 {(py0 + py1) / 2:.0f})" text-anchor="middle">{unit}</text>')
    for name, v, colour in lines:
        s.append(f'<line x1="{left}" x2="{right}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" stroke="{colour}" stroke-dasharray="6 4"/>')
        s.append(f'<text x="{right - 4}" y="{y_of(v) - 4:.1f}" font-size="10" text-anchor="end" fill="{colour}">{name}</text>')
    lx = left + 10
    for name, colour, pts in series:
        path, pen = [], "M"
        for t, v in pts:
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x_of(t):.1f},{y_of(v):.1f}")
            pen = "L"
        s.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.3"/>')
        s.append(f'<text x="{lx}" y="{py0 + 14}" font-size="11" fill="{colour}">{name}</text>')
        lx += 9 * len(name) + 20
    return "\n".join(s)


def main():
    rows = read(sys.argv[1])
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 3072
    w, h = 1000, 230
    tmax = max(r["t"] for r in rows) or 1
    x_of = lambda t: 70 + (w - 90) * t / tmax
    parts = []
    pts = lambda key: [(r["t"], r[key]) for r in rows]
    parts.append(panel(0, h, w, x_of, [("VmRSS", "#c0392b", pts("rss"))], "Server resident memory", "MB",
                       lines=[("budget", budget, "#c0392b")]))
    parts.append(panel(h, h, w, x_of, [("data folder", "#2c3e50", pts("data")), ("payment log", "#2980b9", pts("pay")),
                                       ("key tier", "#8e44ad", pts("keys")), ("journal", "#27ae60", pts("journal"))],
                       "Disk", "MB"))
    parts.append(panel(2 * h, h, w, x_of, [("journal records/s", "#d35400", pts("rate"))], "Rate (between samples under load)", "records/s"))
    parts.append(panel(3 * h, h, w, x_of, [("load average (1 min)", "#7f8c8d", pts("load"))], "Machine load (2 cores, shared)", "load"))
    # The x axis: elapsed minutes, and where each load chunk began (a restart checkpoint lies between chunks).
    ax = []
    y = 4 * h + 5
    for i in range(11):
        t = tmax * i / 10
        ax.append(f'<text x="{x_of(t):.1f}" y="{y + 10}" font-size="10" text-anchor="middle">{t / 60:.0f}</text>')
    ax.append(f'<text x="{w / 2}" y="{y + 26}" font-size="11" text-anchor="middle">elapsed (minutes); dotted: checkpoints (SIGKILL and SIGTERM restarts)</text>')
    last = None
    for r in rows:
        if r["phase"] == "checkpoint" and last != "checkpoint":
            ax.append(f'<line x1="{x_of(r["t"]):.1f}" x2="{x_of(r["t"]):.1f}" y1="0" y2="{4 * h}" stroke="#555" stroke-dasharray="2 3"/>')
        last = r["phase"]
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{4 * h + 40}" font-family="sans-serif">'
           f'<rect width="100%" height="100%" fill="white"/>' + "\n".join(parts + ax) + "</svg>\n")
    with open(sys.argv[2], "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
