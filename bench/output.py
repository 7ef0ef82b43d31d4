"""Presenting results: a rich table per suite and a plot of convforge's speed-up over each peer."""

import math

import numpy as np

PEER_COLORS = {"numpy": "#4C72B0", "torch": "#DD8452"}


def _rows_by_suite(rows):
    suites = {}
    for r in rows:
        suites.setdefault(r["suite"], []).append(r)
    return suites


def groups(rows):
    """(suite, shape, pass, threads) -> {candidate: row}, in the order first seen."""
    out = {}
    for r in rows:
        out.setdefault((r["suite"], r["shape"], r["pass"], r["threads"]), {})[r["candidate"]] = r
    return out


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def fmt_ms(seconds):
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else (f"{ms:.2f}" if ms < 100 else f"{ms:.0f}")


def rate(row):
    if row.get("items_per_s"):
        return f"{row['items_per_s']:.0f} samples/s"
    if row["bound"] == "memory" or not row.get("gflops"):
        return f"{row['gbps']:.1f} GB/s" if row.get("gbps") else "-"
    return f"{row['gflops']:.1f} GFLOP/s"


def pct_peak(row):
    if row.get("pct_peak") is None:
        return "-"
    return f"{row['pct_peak']:.0f}%" + (" (in cache)" if row.get("cache_resident") else "")


def _ratio_style(x):
    if x is None:
        return ""
    return "green" if x >= 1.0 else ("yellow" if x >= 0.7 else "red")


# The layout suites' memory formats as the tables name them (the JSON keeps torch's names).
LAYOUT_NAMES = {"nchw": "NCHW", "channels_last": "NHWC"}


def ratio_columns(base):
    """convforge's row -> {column: speed-up}: each layout against the peer in the same layout
    (`nchw_vs_torch`, `channels_last_vs_torch`), then the best of each against the best of the
    other (`best_vs_<peer>`; `vs_<peer>` in suites without layouts)."""
    cols = {}
    for layout, by_peer in base.get("layout_ratios", {}).items():
        for peer, x in by_peer.items():
            cols[f"{layout}_vs_{peer}"] = x
    best = "best_" if base.get("layout_ratios") else ""
    paired = {p for by_peer in base.get("layout_ratios", {}).values() for p in by_peer}
    for peer, x in sorted(base.get("ratios", {}).items(), key=lambda kv: kv[0] not in paired):
        cols[f"{best}vs_{peer}"] = x  # the peers with layouts first, next to their layout columns
    return cols


def column_title(key):
    """'channels_last_vs_torch' -> 'NHWC vs torch', 'best_vs_torch' -> 'best vs torch'."""
    who, _, peer = key.rpartition("vs_")
    who = who.rstrip("_")
    return f"{LAYOUT_NAMES.get(who, who)} vs {peer}".strip()


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary(rows):
    """Per suite, pass and thread count (and over all passes of a suite that has several): the
    geometric mean and the minimum of each speed-up column over the cases. A list of
    {suite, pass, threads, cases, geomean: {column: x}, min: {column: x}}."""
    bases = [r for r in rows if r["candidate"] == "convforge"]
    passes = {}
    for r in bases:
        passes.setdefault(r["suite"], {})[r["pass"]] = None
    groups_ = {}
    for r in bases:
        keys = [(r["suite"], r["pass"], r["threads"])]
        if len(passes[r["suite"]]) > 1:
            keys.append((r["suite"], "all", r["threads"]))
        for key in keys:
            groups_.setdefault(key, []).append(ratio_columns(r))
    out = []
    for (suite, pass_, threads), cols in sorted(groups_.items(), key=lambda kv: (
            list(passes).index(kv[0][0]), kv[0][2], kv[0][1] == "all")):
        names = list(dict.fromkeys(k for c in cols for k in c))
        out.append({"suite": suite, "pass": pass_, "threads": threads, "cases": len(cols),
                    "geomean": {k: geomean([c.get(k) for c in cols]) for k in names},
                    "min": {k: min((c[k] for c in cols if c.get(k) is not None), default=None) for k in names}})
    return out


def _peer_columns(suite_rows, present):
    """[(title, peer, layout or None)]: one time column per peer, or per peer and layout where
    the peer ran in several layouts."""
    cols = []
    for p in present:
        layouts = list(dict.fromkeys(l for r in suite_rows if r["candidate"] == p for l in r.get("layouts", {})))
        cols += [(f"{p}\n{LAYOUT_NAMES.get(l, l)} ms", p, l) for l in layouts] or [(f"{p} ms", p, None)]
    return cols


def _convforge_columns(bases, algorithms):
    """convforge's own columns, as two lists of (title, cell(row, mark) -> str, numeric): those
    before the peers' and those after the ratios. In the layout suites a time and a % peak per
    layout, one spread (the wider of the layouts'), and the algorithm per layout last (the widest
    cells); elsewhere time, spread, rate, % peak and algorithm, as before the layouts."""
    layouts = list(dict.fromkeys(l for r in bases for l in r.get("layouts", {})))
    if not layouts:
        cols = [("ms", lambda r, mark: fmt_ms(r["median_s"]) + mark, True),
                ("±", lambda r, mark: f"{100 * r['spread']:.0f}%", True),
                ("rate", lambda r, mark: rate(r), True),
                ("% peak", lambda r, mark: pct_peak(r), True)]
        if algorithms:
            cols.append(("algorithm", lambda r, mark: r.get("variant") or "-", False))
        return cols, []

    def of(layout, cell):
        return lambda r, mark: cell(r["layouts"][layout], r, mark) if layout in r.get("layouts", {}) else "-"

    def compact_pct(mine, r, mark):  # '*': the data fit in the last-level cache (see the footnote)
        x = mine.get("pct_peak")
        return "-" if x is None else f"{x:.0f}%" + ("*" if r.get("cache_resident") else "")

    names = [(l, LAYOUT_NAMES.get(l, l)) for l in layouts]
    cols = [(f"{name}\nms", of(l, lambda mine, r, mark: fmt_ms(mine["median_s"]) + mark), True) for l, name in names]
    cols.append(("±", lambda r, mark: f"{100 * max(m['spread'] for m in r['layouts'].values()):.0f}%", True))
    cols += [(f"{name}\n% peak", of(l, compact_pct), True) for l, name in names]
    # "dx A, dw B" (backward) as two lines: the columns stay as wide as one algorithm's name.
    algorithm = [(f"{name} algorithm", of(l, lambda mine, r, mark: (mine.get("variant") or "-").replace(", ", "\n")),
                  False) for l, name in names]
    return cols, algorithm if algorithms else []


def tables(rows, peers, console=None):
    """Prints one rich table per suite, with geometric-mean rows; returns the list of tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    made = []
    for suite, suite_rows in _rows_by_suite(rows).items():
        present = [p for p in peers if any(r["candidate"] == p for r in suite_rows)]
        bases = [r for r in suite_rows if r["candidate"] == "convforge"]
        algorithms = any(r.get("variant") for r in bases)  # convforge's algorithm (conv2d), where named
        own, last = _convforge_columns(bases, algorithms)
        peer_cols = _peer_columns(suite_rows, present)
        ratio_keys = list(dict.fromkeys(k for r in bases for k in ratio_columns(r)))
        table = Table(title=f"{suite}: convforge vs {', '.join(present) or 'no peer'}", title_justify="left")
        table.add_column("shape", no_wrap=True)
        table.add_column("pass", no_wrap=True)
        table.add_column("thr", justify="right", no_wrap=True)
        for title, _, numeric in own:
            table.add_column(title, justify="right" if numeric else "left", no_wrap=numeric)
        for title, _, _ in peer_cols:
            table.add_column(title, justify="right", no_wrap=True)
        for key in ratio_keys:  # "NCHW vs torch" in two lines where there are layouts
            title = column_title(key)
            table.add_column(title.replace(" vs ", " vs\n") if any("layouts" in r for r in bases) else title,
                             justify="right", no_wrap=True)
        for title, _, _ in last:
            table.add_column(title)
        noisy = False
        for (_, shape, pass_, threads), by in groups(suite_rows).items():
            base = by.get("convforge")
            mark = " !" if any(r["noisy"] for r in by.values()) else ""
            noisy |= bool(mark)
            cells = [shape, pass_, str(threads)]
            # convforge could not run this case (e.g. a layer API not built yet): dashes
            cells += [cell(base, mark) if base else "-" for _, cell, _ in own]
            for _, p, layout in peer_cols:
                r = by.get(p)
                if r is None or (layout is not None and layout not in r.get("layouts", {})):
                    cells.append("-")
                elif layout is not None:
                    cells.append(fmt_ms(r["layouts"][layout]["median_s"]))
                else:
                    v = f" ({r['variant']})" if r.get("variants") else ""
                    cells.append(fmt_ms(r["median_s"]) + v)
            ratios = ratio_columns(base or {})
            for key in ratio_keys:
                x = ratios.get(key)
                cells.append(f"[{_ratio_style(x)}]{fmt_ratio(x)}[/]" if x is not None else "-")
            cells += [cell(base, mark) if base else "-" for _, cell, _ in last]
            table.add_row(*cells)
        if ratio_keys:  # with a peer: the geometric means of its columns
            table.add_section()
        for i, s in enumerate(summary(suite_rows) if ratio_keys else []):
            cells = ["geomean" if i == 0 else "", s["pass"], str(s["threads"])] + [""] * (len(own) + len(peer_cols))
            for key in ratio_keys:
                x = s["geomean"].get(key)
                cells.append(f"[bold {_ratio_style(x)}]{fmt_ratio(x)}[/]" if x is not None else "-")
            table.add_row(*cells, *[""] * len(last))
        console.print(table)
        for note in dict.fromkeys(n for r in suite_rows for n in r.get("notes", [])):
            console.print(f"[yellow]note: {note}[/]")
        if noisy:
            console.print(f"[yellow]! a contestant's spread (IQR / median) exceeded {int(100 * NOISY)}%: "
                          "the machine was busy; repeat before trusting that row[/]")
        made.append(table)
    console.print("ms: median per call; ±: IQR / median of convforge's samples; vs peer: peer time / convforge "
                  "time (> 1: convforge is faster); % peak: of the measured FMA peak (compute-bound) or DRAM triad "
                  "bandwidth (memory-bound; 'in cache', '*': the data fit in the last-level cache, so DRAM is not "
                  "the limit); geomean: the geometric mean of each speed-up over the cases above.")
    if any("layouts" in r for r in rows):
        console.print("NCHW / NHWC: convforge on NCHW arrays / on NHWC arrays viewed as NCHW, torch on contiguous / "
                      "channels_last tensors; NCHW vs torch: torch NCHW time / convforge NCHW time; NHWC vs torch: "
                      "torch channels_last time / convforge NHWC time; best vs peer: the peer's faster layout / "
                      "convforge's faster layout; ±: the wider of convforge's two spreads.")
    return made


from .timing import NOISY_SPREAD as NOISY  # noqa: E402


def plot(rows, peers, path, title=None):
    """convforge's speed-up over each peer as one compact grid per suite: a row per shape, a column
    per (speed-up column of ratio_columns, pass, threads), each cell coloured on a log scale around
    parity and labelled with the ratio (peer time / convforge time; > 1: convforge faster; "?"
    marks a noisy row). In the layout suites the columns are each layout against the peer's same
    layout, and the best of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.pyplot as plt

    suites = [(s, groups(r)) for s, r in _rows_by_suite(rows).items()]
    suites = [(s, g) for s, g in suites if any("convforge" in by for by in g.values())]
    if not suites:
        raise ValueError("plot: no convforge results to plot")
    panels = []
    for suite, g in suites:
        shapes = list(dict.fromkeys(shape for (_, shape, _, _), by in g.items() if "convforge" in by))
        # A column per (speed-up column, pass, threads): vs each peer, and per layout where there are layouts.
        columns = list(dict.fromkeys(
            (key, pass_, threads) for (_, _, pass_, threads), by in g.items() if "convforge" in by
            for key, x in ratio_columns(by["convforge"]).items()
            if x is not None and key.rpartition("vs_")[2] in peers))
        cells = np.full((len(shapes), max(1, len(columns))), np.nan)
        noisy = np.zeros(cells.shape, bool)
        for (_, shape, pass_, threads), by in g.items():
            base = by.get("convforge")
            if base is None:
                continue
            for key, x in ratio_columns(base).items():
                if (key, pass_, threads) in columns and x is not None:
                    i, j = shapes.index(shape), columns.index((key, pass_, threads))
                    cells[i, j] = x
                    noisy[i, j] = any(r["noisy"] for r in by.values())
        panels.append((suite, shapes, columns, cells, noisy))
    # Panels side by side while they are narrow; a wide one (layouts x passes x threads) gets a row of its own.
    widths = [max(7.5, 0.75 * len(p[2]) + 2.5) for p in panels]
    ncols = min(2, len(panels)) if max(widths) <= 7.5 else 1
    nrows = math.ceil(len(panels) / ncols)
    row_heights = [max(1.6, 0.3 * max(len(p[1]) for p in panels[r * ncols:(r + 1) * ncols]) + 1.3)
                   for r in range(nrows)]
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(widths) * ncols, sum(row_heights)), squeeze=False,
                             gridspec_kw={"height_ratios": row_heights})
    norm = matplotlib.colors.LogNorm(vmin=1 / 3, vmax=3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (suite, shapes, columns, cells, noisy) in zip(axes.flat, panels):
        ax.imshow(np.clip(np.nan_to_num(cells, nan=1.0), 1 / 3, 3), cmap="RdYlGn", norm=norm, aspect="auto")
        for (i, j), v in np.ndenumerate(cells):
            if not math.isnan(v):
                ax.text(j, i, fmt_ratio(v) + ("?" if noisy[i, j] else ""), ha="center", va="center", fontsize=8)
        ax.set_yticks(range(len(shapes)), shapes, fontsize=8)
        ax.set_xticks(range(len(columns)), [column_title(key).replace(" vs ", " vs\n")
                                            + (f"\n{pass_} {t}T" if pass_ != "epoch" else f"\n{t}T")
                                            for key, pass_, t in columns], fontsize=7)
        ax.xaxis.tick_top()
        ax.set_title(suite, fontsize=10, loc="left")
    fig.suptitle((title + "\n" if title else "") + "convforge speed-up: peer time / convforge time "
                 "(green: convforge faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
