"""The reports of ``mulfree compare``: CSV, JSON, Markdown and a self-contained HTML page.

``results.csv`` / ``results.json`` hold one row per point (the columns in ``COLUMNS``);
``report.md`` and ``report.html`` show the summary (ratio of each scheme's ``logic`` to
the uniform scheme's at the same width, mode, activation width and target; ``logic`` is
the LUT4 count on iCE40, LUT4 + 2 x CCU2C on ECP5, the gate count for ``generic``), every point
beside its analytic estimate, and the plots: LUTs against weight bits per scheme, Fmax,
LUT x delay, and the ratio to uniform. The HTML page embeds the plots as base64 PNG, so
it is one file that can be mailed or attached to a CI run; the PNGs are also written to
``plots/`` for the Markdown report. Every file is written atomically.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import time
from collections import defaultdict
from pathlib import Path

from mulfree.gen.fileio import atomic_write_bytes, atomic_write_text

__all__ = ["COLUMNS", "summary_ratios", "write_reports", "markdown_summary", "render_plots"]

COLUMNS = ("mode", "scheme", "wbits", "abits", "target", "lut", "ff", "carry", "dsp", "bram",
           "cells", "fmax_mhz", "logic", "area_ge", "placed_lc", "est_logic", "est_err_pct",
           "seconds",
           "cached", "key", "error")

_SCHEME_ORDER = ("uniform", "pot", "apot", "lut", "binary", "ternary")
_COLORS = {"uniform": "#333333", "pot": "#1f77b4", "apot": "#2ca02c", "lut": "#d62728",
           "binary": "#9467bd", "ternary": "#ff7f0e"}
_UNIT = {"ice40": "LUT4", "ecp5": "LUT4+2CCU2C", "generic": "gates"}
# binary and ternary have their own code width; their ratio is to uniform at 2 bits.
_RATIO_WBITS = {"binary": 2, "ternary": 2}


def _ok(rows):
    return [r for r in rows if r.get("error") is None and r.get("logic") is not None]


def summary_ratios(rows: list[dict]) -> list[dict]:
    """One entry per (mode, target, abits, wbits): the uniform ``lut`` and, per scheme,
    ``lut / uniform lut`` (binary and ternary against uniform at 2-bit weights, shown in
    that row)."""
    ok = _ok(rows)
    uni = {(r["mode"], r["target"], r["abits"], r["wbits"]): r["logic"] for r in ok
           if r["scheme"] == "uniform"}
    table: dict[tuple, dict] = {}
    for r in ok:
        wb = _RATIO_WBITS.get(r["scheme"], r["wbits"])
        k = (r["mode"], r["target"], r["abits"], wb)
        if k not in uni or not uni[k]:
            continue
        entry = table.setdefault(k, {"mode": k[0], "target": k[1], "abits": k[2], "wbits": k[3],
                                     "uniform_lut": uni[k], "ratio": {}})
        entry["ratio"][r["scheme"]] = round(r["logic"] / uni[k], 3)
    order = {"runtime": 0, "baked": 1, "tables": 2}
    tgt = {"ice40": 0, "ecp5": 1, "generic": 2}
    return [table[k] for k in sorted(table, key=lambda k: (order.get(k[0], 9), tgt.get(k[1], 9),
                                                          k[2], k[3]))]


def _schemes_in(rows) -> list[str]:
    present = {r["scheme"] for r in rows}
    return [s for s in _SCHEME_ORDER if s in present]


def markdown_summary(rows: list[dict]) -> str:
    """The summary tables in Markdown: per (mode, target, abits), weight bits down,
    schemes across, each cell ``lut / uniform lut``, the uniform column in absolute units."""
    summ = summary_ratios(rows)
    schemes = [s for s in _schemes_in(rows) if s != "uniform"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in summ:
        groups[(e["mode"], e["target"], e["abits"])].append(e)
    out = []
    for (mode, target, abits), entries in groups.items():
        unit = _UNIT.get(target, "LUT")
        what = {"runtime": "one MAC lane", "baked": "baked layer"}.get(mode, "sparse "
                                                                       "neurons as tables")
        out.append(f"**{mode}** ({what}), **{target}**, {abits}-bit activations: "
                   f"{unit} relative to uniform\n")
        out.append("| weight bits | uniform (" + unit + ") | " + " | ".join(schemes) + " |")
        out.append("|---:|---:|" + "---:|" * len(schemes))
        for e in entries:
            cells = [f"{e['ratio'][s]:.2f}x" if s in e["ratio"] else "" for s in schemes]
            out.append(f"| {e['wbits']} | {e['uniform_lut']} | " + " | ".join(cells) + " |")
        out.append("")
    if any(s in schemes for s in ("binary", "ternary")):
        out.append("binary (1-bit codes) and ternary (2-bit codes) are shown against uniform "
                   "at 2 bits.\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Plots

def render_plots(rows: list[dict]) -> dict[str, bytes]:
    """PNG bytes by name: ``luts``, ``fmax``, ``lut_delay``, ``ratio``, ``estimate``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    ok = _ok(rows)
    out = {}
    modes = [m for m in ("runtime", "baked", "tables") if any(r["mode"] == m for r in ok)]
    targets = [t for t in ("ice40", "ecp5", "generic") if any(r["target"] == t for r in ok)]
    abits_all = sorted({r["abits"] for r in ok})
    abits = abits_all[-1] if abits_all else None     # plots show the widest activations

    def grid_plot(name, title, value, ylabel, targets_, log=False):
        if not modes or not targets_:
            return
        fig, axes = plt.subplots(len(modes), len(targets_), squeeze=False,
                                 figsize=(4.2 * len(targets_), 3.3 * len(modes)))
        for i, mode in enumerate(modes):
            for j, target in enumerate(targets_):
                ax = axes[i][j]
                for scheme in _schemes_in(ok):
                    pts = sorted((r["wbits"], value(r)) for r in ok
                                 if r["mode"] == mode and r["target"] == target
                                 and r["scheme"] == scheme and r["abits"] == abits
                                 and value(r) is not None)
                    if not pts:
                        continue
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, marker="o", ms=4, label=scheme, color=_COLORS[scheme])
                ax.set_title(f"{mode}, {target}", fontsize=10)
                ax.set_xlabel("weight bits")
                ax.set_ylabel(ylabel(target))
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                if log:
                    ax.set_yscale("log")
                    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                    ax.yaxis.set_major_formatter(ScalarFormatter())
                    ax.yaxis.set_minor_formatter(NullFormatter())
                ax.grid(alpha=0.3)
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes.flat:
            h, lab = ax.get_legend_handles_labels()
            for a, b in zip(h, lab):
                if b not in labels:
                    handles.append(a)
                    labels.append(b)
        fig.suptitle(f"{title} ({abits}-bit activations)", y=0.995, fontsize=11)
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False,
                   bbox_to_anchor=(0.5, 0.96))
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out[name] = buf.getvalue()

    grid_plot("luts", "Logic vs weight width", lambda r: r["logic"],
              lambda t: _UNIT.get(t, "LUT"), targets, log=True)
    timed = [t for t in targets if t != "generic"]
    grid_plot("fmax", "Fmax (register to register, nextpnr)", lambda r: r["fmax_mhz"],
              lambda t: "MHz", timed)
    grid_plot("lut_delay", "LUT x critical-path delay", lambda r: (
        r["logic"] * 1000.0 / r["fmax_mhz"] if r["fmax_mhz"] else None),
        lambda t: f"{_UNIT.get(t, 'LUT')} x ns", timed, log=True)
    uni = {(r["mode"], r["target"], r["abits"], r["wbits"]): r["logic"] for r in ok
           if r["scheme"] == "uniform"}

    def ratio(r):
        k = (r["mode"], r["target"], r["abits"], _RATIO_WBITS.get(r["scheme"], r["wbits"]))
        return r["logic"] / uni[k] if uni.get(k) else None

    grid_plot("ratio", "Logic relative to uniform", ratio, lambda t: "x uniform", targets)
    est = [r for r in ok if r.get("est_logic")]
    if est:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for target, marker in (("ice40", "o"), ("ecp5", "s"), ("generic", "^")):
            pts = [(r["logic"], r["est_logic"]) for r in est if r["target"] == target]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=14, marker=marker, label=target, alpha=0.7)
        lo = min(min(r["logic"], r["est_logic"]) for r in est)
        hi = max(max(r["logic"], r["est_logic"]) for r in est)
        ax.plot([lo, hi], [lo, hi], color="gray", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured logic (LUT4, LUT4 + 2 CCU2C, gates)")
        ax.set_ylabel("analytic estimate")
        ax.set_title("Estimate vs measured")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out["estimate"] = buf.getvalue()
    return out


# ---------------------------------------------------------------------------------------
# Writing

def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.1f}" if not math.isnan(v) else ""
    return str(v)


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else
                        (r[k].splitlines()[0] if k == "error" else r[k])) for k in COLUMNS})
    return buf.getvalue()


_TABLE_COLS = ("mode", "scheme", "wbits", "abits", "target", "logic", "est_logic", "est_err_pct",
               "lut",
               "ff", "carry", "dsp", "bram", "fmax_mhz", "area_ge", "cells")


def _estimate_stats(rows) -> dict[str, dict]:
    by: dict[str, list[float]] = defaultdict(list)
    for r in _ok(rows):
        if r.get("est_err_pct") is not None:
            by[f"{r['mode']} {r['target']}"].append(abs(r["est_err_pct"]))
    return {k: {"points": len(v), "median_abs_err_pct": round(sorted(v)[len(v) // 2], 1),
                "max_abs_err_pct": round(max(v), 1)} for k, v in by.items()}


def _notes() -> list[str]:
    from .designs import ACC_TERMS, BAKED_IN, BAKED_OUT, TABLE_BITS, TABLE_MAX_INDEX_BITS

    return [
        f"`runtime`: one MAC lane (`mulfree.hw.mac.MacLane`): product unit and a "
        f"{ACC_TERMS}-term accumulator, the weight an input. `baked`: a dense layer of "
        f"{BAKED_IN} inputs and {BAKED_OUT} outputs with constant weights drawn (fixed seed) "
        f"from the scheme's codebook. `tables` (with `--modes tables`): the same {BAKED_OUT} "
        f"neurons on their first inputs (as many as fit {TABLE_BITS} table bits), each "
        f"accumulator one truth table. All use the quantizer's codebooks "
        f"(`mulfree.gen.train.quant.weight_levels`); PoT has none past 6 bits (exponents past "
        f"2**30), so PoT points stop there.",
        "`lut` is LUT4 on iCE40 (`synth_ice40`, no DSP) and ECP5 (`synth_ecp5 -nodsp`), and "
        "two-input gates plus 2:1 muxes for `generic` (`synth; abc -g "
        "AND,NAND,OR,NOR,XOR,XNOR,MUX`), whose `area_ge` weighs them in NAND2 equivalents. "
        "Ratios and plots use `logic`: `lut`, except on ECP5, where adders sit in CCU2C "
        "carry cells (two LUT4 each) that Yosys does not count as LUT4: LUT4 + 2 x CCU2C.",
        "Fmax is nextpnr's register-to-register figure with every input and output of the "
        "design registered by a harness (iCE40UP5K sg48; LFE5U-85F), so pads do not count.",
        "PoT and APoT codebooks at b-bit codes reach exponents up to about 2**(b-1): extra "
        "bits buy dynamic range, not precision, and the shifter and accumulator grow with it.",
        f"A runtime `lut` lane reads its product from a table indexed by weight and "
        f"activation code; tables past {TABLE_MAX_INDEX_BITS} index bits belong in block "
        f"RAM and are left out.",
    ]


def write_reports(out_dir: str | Path, rows: list[dict], *, meta: dict,
                  models: list[dict] | None = None, models_note: str | None = None) -> dict:
    """Write results.csv, results.json, report.md, report.html and plots/*.png into
    ``out_dir``; return ``{name: path}``."""
    out_dir = Path(out_dir)
    paths = {}
    summary = summary_ratios(rows)
    doc = {"meta": meta, "columns": list(COLUMNS), "rows": rows, "summary": summary,
           "estimate_error": _estimate_stats(rows), "models": models or [],
           "models_note": models_note}
    paths["json"] = atomic_write_text(out_dir / "results.json", json.dumps(doc, indent=1))
    paths["csv"] = atomic_write_text(out_dir / "results.csv", _csv_text(rows))
    plots = render_plots(rows)
    for name, png in plots.items():
        paths[f"plot_{name}"] = atomic_write_bytes(out_dir / "plots" / f"{name}.png", png)
    paths["md"] = atomic_write_text(out_dir / "report.md",
                                    _markdown(rows, meta, plots, models, models_note))
    paths["html"] = atomic_write_text(out_dir / "report.html",
                                      _html(rows, meta, plots, models, models_note))
    return paths


_PLOT_TITLES = {"luts": "LUTs vs weight bits per scheme", "fmax": "Fmax",
                "lut_delay": "LUT x delay", "ratio": "Ratio to uniform",
                "estimate": "Analytic estimate vs measured"}


def _md_table(cols, rows) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _model_cols():
    return ("scheme", "wbits", "model", "target", "logic", "lut", "carry", "ff", "bram",
            "fmax_mhz", "cycles_per_inference", "inferences_per_s", "accuracy_pct")


def _markdown(rows, meta, plots, models, models_note) -> str:
    ok = _ok(rows)
    failed = [r for r in rows if r.get("error")]
    parts = [
        "# mulfree compare: what each arithmetic scheme costs", "",
        f"Command: `{meta.get('command', 'mulfree compare')}`  ",
        f"{len(rows)} points ({meta.get('synthesized', 0)} synthesized, "
        f"{meta.get('cached', 0)} from the cache, {len(failed)} failed) in "
        f"{meta.get('seconds', 0):.0f} s on {meta.get('jobs', 1)} job(s); "
        f"tools: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}.", "",
        "## Summary: logic relative to uniform", "", markdown_summary(rows), "",
        "## Notes", "", *[f"- {n}" for n in _notes()], "",
    ]
    if models:
        parts += ["## Whole networks (digits)", "", _md_table(_model_cols(), models), ""]
    elif models_note:
        parts += ["## Whole networks (digits)", "", models_note, ""]
    parts += ["## Plots", ""]
    for name in plots:
        parts.append(f"![{_PLOT_TITLES.get(name, name)}](plots/{name}.png)")
        parts.append("")
    stats = _estimate_stats(rows)
    if stats:
        parts += ["## Analytic estimates", "",
                  "Median and largest absolute error of the estimate (`compare/estimate.py`):", "",
                  _md_table(("group", "points", "median_abs_err_pct", "max_abs_err_pct"),
                            [{"group": k, **v} for k, v in stats.items()]), ""]
    parts += ["## Every point", "", _md_table(_TABLE_COLS, ok), ""]
    if failed:
        parts += ["## Failed points", ""]
        for r in failed:
            first = (r["error"] or "").splitlines()[0]
            parts.append(f"- {r['mode']} {r['scheme']} w{r['wbits']} a{r['abits']} "
                         f"{r['target']}: {first}")
        parts.append("")
    return "\n".join(parts)


def _html_table(cols, rows, ratio_cols=()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            text = html.escape(_fmt(v))
            cls = ""
            if c in ratio_cols and isinstance(v, (int, float)):
                cls = " class='good'" if v < 1 else " class='bad'" if v > 1 else ""
                text = f"{v:.2f}x"
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(rows, meta, plots, models, models_note) -> str:
    ok = _ok(rows)
    failed = [r for r in rows if r.get("error")]
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>mulfree compare</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}th{background:#f2f2f2}"
        "td.good{background:#e3f5e1}td.bad{background:#fbe3e3}img{max-width:100%;"
        "border:1px solid #eee;margin:.4em 0}code{background:#f4f4f4;padding:0 3px}"
        "details{margin:1em 0}",
        "</style></head><body>",
        "<h1>mulfree compare: what each arithmetic scheme costs</h1>",
        f"<p>Command: <code>{e(meta.get('command', 'mulfree compare'))}</code><br>"
        f"{len(rows)} points ({meta.get('synthesized', 0)} synthesized, "
        f"{meta.get('cached', 0)} from the cache, {len(failed)} failed) in "
        f"{meta.get('seconds', 0):.0f} s on {meta.get('jobs', 1)} job(s); generated "
        f"{e(meta.get('date', ''))}; tools: "
        f"{e(', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items()))}.</p>",
        "<h2>Summary: logic relative to uniform</h2>",
    ]
    summ = summary_ratios(rows)
    schemes = [s for s in _schemes_in(rows) if s != "uniform"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for en in summ:
        groups[(en["mode"], en["target"], en["abits"])].append(en)
    for (mode, target, abits), entries in groups.items():
        unit = _UNIT.get(target, "LUT")
        parts.append(f"<h3>{e(mode)}, {e(target)}, {abits}-bit activations</h3>")
        flat = [{"weight bits": en["wbits"], f"uniform ({unit})": en["uniform_lut"],
                 **{s: en["ratio"].get(s) for s in schemes}} for en in entries]
        parts.append(_html_table(["weight bits", f"uniform ({unit})", *schemes], flat,
                                 ratio_cols=schemes))
    parts.append("<p>binary (1-bit codes) and ternary (2-bit codes) are shown against uniform "
                 "at 2 bits. Green: cheaper than uniform.</p>")
    parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in _notes()) + "</ul>")
    parts.append("<h2>Whole networks (digits)</h2>")
    if models:
        parts.append(_html_table(list(_model_cols()), models))
    else:
        parts.append(f"<p>{e(models_note or 'No models given.')}</p>")
    parts.append("<h2>Plots</h2>")
    for name, png in plots.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<h3>{e(_PLOT_TITLES.get(name, name))}</h3>"
                     f"<img alt='{e(name)}' src='data:image/png;base64,{data}'>")
    stats = _estimate_stats(rows)
    if stats:
        parts.append("<h2>Analytic estimates</h2>")
        parts.append(_html_table(["group", "points", "median_abs_err_pct", "max_abs_err_pct"],
                                 [{"group": k, **v} for k, v in stats.items()]))
    parts.append(f"<details open><summary><b>Every point ({len(ok)})</b></summary>")
    parts.append(_html_table(list(_TABLE_COLS), ok))
    parts.append("</details>")
    if failed:
        parts.append("<h2>Failed points</h2><ul>")
        for r in failed:
            parts.append(f"<li>{e(r['mode'])} {e(r['scheme'])} w{r['wbits']} a{r['abits']} "
                         f"{e(r['target'])}: <pre>{e(r['error'] or '')}</pre></li>")
        parts.append("</ul>")
    parts.append(f"<p><small>mulfree compare, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                 "</small></p></body></html>")
    return "\n".join(parts)
