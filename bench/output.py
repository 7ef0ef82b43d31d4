"""Presenting results: a rich table per suite and a plot of convforge's speed-up over each peer."""

import math

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
                cells = [shape, pass_, str(threads), "-", "-", "-", "-"]
                base = {"ratios": {}}
            else:
                cells = [shape, pass_, str(threads), fmt_ms(base["median_s"]) + mark, f"{100 * base['spread']:.0f}%",
                         rate(base), pct_peak(base)]
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
    """A horizontal bar chart per suite of convforge's speed-up over each peer (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    suites = [(s, groups(r)) for s, r in _rows_by_suite(rows).items()]
    suites = [(s, g) for s, g in suites if any("convforge" in by for by in g.values())]
    if not suites:
        raise ValueError("plot: no convforge results to plot")
    heights = [max(2.0, 0.32 * len(g) * max(1, len(peers)) + 1.2) for _, g in suites]
    fig, axes = plt.subplots(len(suites), 1, figsize=(10, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (suite, g) in zip(axes[:, 0], suites):
        labels, ratios, flags = [], {p: [] for p in peers}, []
        for (_, shape, pass_, threads), by in g.items():
            base = by.get("convforge")
            if base is None:
                continue
            labels.append(f"{shape} {pass_} {threads}T" if pass_ != "epoch" else f"{shape} {threads}T")
            for p in peers:
                ratios[p].append(base["ratios"].get(p))
            flags.append(any(r["noisy"] for r in by.values()))
        present = [p for p in peers if any(v is not None for v in ratios[p])]
        bar_h = 0.8 / max(1, len(present))
        all_values = [v for p in present for v in ratios[p] if v]
        for j, p in enumerate(present):
            ys = [i + (j - (len(present) - 1) / 2) * bar_h for i in range(len(labels))]
            vals = [v if v else float("nan") for v in ratios[p]]
            # Bars grow from 1 (parity): right = convforge faster, left = slower.
            ax.barh(ys, [v - 1.0 for v in vals], left=1.0, height=bar_h, color=PEER_COLORS.get(p, None),
                    label=f"vs {p}")
            for y, v, noisy in zip(ys, vals, flags):
                if not math.isnan(v):
                    text = fmt_ratio(v) + (" (noisy)" if noisy else "")
                    right = v >= 1.0  # label beyond the bar's end, on its own side of 1
                    ax.text(v * 1.04 if right else v / 1.04, y, text, va="center", ha="left" if right else "right",
                            fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        lo = min(all_values + [0.5]) / 2.5
        hi = max(all_values + [2.0]) * 2.5
        ax.set_xlim(lo, hi)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_title(f"{suite}: convforge speed-up (peer time / convforge time; right of 1 = convforge faster)",
                     fontsize=9)
        ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985) if title else None)
    fig.savefig(path, dpi=110)
    plt.close(fig)
