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


def tables(rows, peers, console=None):
    """Prints one rich table per suite; returns the list of tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    made = []
    for suite, suite_rows in _rows_by_suite(rows).items():
        present = [p for p in peers if any(r["candidate"] == p for r in suite_rows)]
        table = Table(title=f"{suite}: convforge vs {', '.join(present) or 'no peer'}", title_justify="left")
        table.add_column("shape")
        table.add_column("pass")
        table.add_column("thr", justify="right")
        table.add_column("ms", justify="right")
        table.add_column("±", justify="right")
        table.add_column("rate", justify="right")
        table.add_column("% peak", justify="right")
        # Which algorithm convforge ran (conv2d), when the suite names one.
        algorithms = any(r["candidate"] == "convforge" and r.get("variant") for r in suite_rows)
        if algorithms:
            table.add_column("algorithm")
        for p in present:
            table.add_column(f"{p} ms", justify="right")
        for p in present:
            table.add_column(f"vs {p}", justify="right")
        noisy = False
        for (_, shape, pass_, threads), by in groups(suite_rows).items():
            base = by.get("convforge")
            mark = " !" if any(r["noisy"] for r in by.values()) else ""
            noisy |= bool(mark)
            if base is None:  # convforge could not run this case (e.g. a layer API not built yet)
                cells = [shape, pass_, str(threads), "-", "-", "-", "-"] + ["-"] * algorithms
                base = {"ratios": {}}
            else:
                cells = [shape, pass_, str(threads), fmt_ms(base["median_s"]) + mark, f"{100 * base['spread']:.0f}%",
                         rate(base), pct_peak(base)] + [base.get("variant") or "-"] * algorithms
            for p in present:
                r = by.get(p)
                v = f" ({r['variant']})" if r and r.get("variants") else ""
                cells.append(fmt_ms(r["median_s"]) + v if r else "-")
            for p in present:
                x = base["ratios"].get(p)
                cells.append(f"[{_ratio_style(x)}]{fmt_ratio(x)}[/]" if x is not None else "-")
            table.add_row(*cells)
        console.print(table)
        for note in dict.fromkeys(n for r in suite_rows for n in r.get("notes", [])):
            console.print(f"[yellow]note: {note}[/]")
        if noisy:
            console.print(f"[yellow]! a contestant's spread (IQR / median) exceeded {int(100 * NOISY)}%: "
                          "the machine was busy; repeat before trusting that row[/]")
        made.append(table)
    console.print("ms: median per call; ±: IQR / median of convforge's samples; vs peer: peer time / convforge "
                  "time (> 1: convforge is faster); % peak: of the measured FMA peak (compute-bound) or DRAM triad "
                  "bandwidth (memory-bound; 'in cache': the data fit in the last-level cache, so DRAM is not the limit).")
    return made


from .timing import NOISY_SPREAD as NOISY  # noqa: E402


def plot(rows, peers, path, title=None):
    """convforge's speed-up over each peer as one compact grid per suite: a row per shape, a column
    per (peer, pass, threads), each cell coloured on a log scale around parity and labelled with
    the ratio (peer time / convforge time; > 1: convforge faster; "?" marks a noisy row)."""
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
        columns = list(dict.fromkeys(
            (p, pass_, threads) for (_, _, pass_, threads), by in g.items() if "convforge" in by
            for p in peers if by["convforge"]["ratios"].get(p) is not None))
        cells = np.full((len(shapes), max(1, len(columns))), np.nan)
        noisy = np.zeros(cells.shape, bool)
        for (_, shape, pass_, threads), by in g.items():
            base = by.get("convforge")
            if base is None:
                continue
            for p in peers:
                if (p, pass_, threads) in columns and base["ratios"].get(p) is not None:
                    i, j = shapes.index(shape), columns.index((p, pass_, threads))
                    cells[i, j] = base["ratios"][p]
                    noisy[i, j] = any(r["noisy"] for r in by.values())
        panels.append((suite, shapes, columns, cells, noisy))
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    row_heights = [max(1.6, 0.3 * max(len(p[1]) for p in panels[r * ncols:(r + 1) * ncols]) + 1.3)
                   for r in range(nrows)]
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.5 * ncols, sum(row_heights)), squeeze=False,
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
        ax.set_xticks(range(len(columns)), [f"vs {p}\n{pass_} {t}T" if pass_ != "epoch" else f"vs {p}\n{t}T"
                                            for p, pass_, t in columns], fontsize=7)
        ax.xaxis.tick_top()
        ax.set_title(suite, fontsize=10, loc="left")
    fig.suptitle((title + "\n" if title else "") + "convforge speed-up: peer time / convforge time "
                 "(green: convforge faster)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
