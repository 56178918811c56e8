"""Memory over time as a picture (matplotlib, no display needed: the Agg backend).

One line per top allocating function: bytes allocated in each interval, against seconds
since the start. The plotted data also goes into the PNG's text chunk "lumos-series"
(JSON: times and one list per series), so the picture carries its own numbers: the
tests read them back with an image library and check them against the pprof totals.
"""

from __future__ import annotations

import json


def plot_series(path: str, times_s: list[float], series: dict[str, list[float]],
                title: str, ylabel: str = "bytes allocated per interval") -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for name, ys in series.items():
            ax.plot(times_s, ys, marker=".", label=name)
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(EngFormatter(unit="B"))
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        data = json.dumps({"times": times_s, "series": series})
        fig.savefig(path, format="png", metadata={"lumos-series": data})
    finally:
        plt.close(fig)
