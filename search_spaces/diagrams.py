"""Architecture diagrams drawn with matplotlib (Agg backend; no graphviz binary needed).

* ``draw_stage_table(header, rows, path_without_suffix, title)`` - a per-stage table, used by
  the attention and computation-reallocation spaces (CR-NAS, Liang et al. ICLR 2020).
* ``draw_cell(edges, inputs, blocks, concat, path_without_suffix, title)`` - a cell as a DAG of
  ops in the style of the NASNet (Zoph et al., CVPR 2018) and DARTS (Liu et al., ICLR 2019)
  figures: the inputs h(i-1) and h(i-2) on the left, one node per block, edges labelled with
  their op, and the concatenated output h(i+1) on the right.

Every function writes ``<path>.png`` and ``<path>.svg`` and returns the two paths. matplotlib is
imported inside the functions, so importing this module is cheap.
"""
from __future__ import annotations

import os
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path_without_suffix: str) -> list[str]:
    plt = _pyplot()
    folder = os.path.dirname(os.path.abspath(path_without_suffix))
    os.makedirs(folder, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = f"{path_without_suffix}.{ext}"
        fig.savefig(p, dpi=150 if ext == "png" else None, bbox_inches="tight", facecolor="white")
        paths.append(p)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- stage table
def draw_stage_table(header: list[str], rows: list[list[str]], path_without_suffix: str, title: str) -> list[str]:
    """Draw a table (one row per stage, say) with a bold header row and a title; write
    ``<path>.png`` and ``<path>.svg``; return the paths written."""
    header = [str(h) for h in header]
    rows = [[str(c) for c in r] for r in rows]
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise ValueError(f"row {i} has {len(r)} cells, the header has {len(header)}")
    plt = _pyplot()
    # Column widths from the longest text in each column (in characters).
    widths = [max([len(header[j])] + [len(r[j]) for r in rows]) + 2 for j in range(len(header))]
    total = float(sum(widths))
    fig_w = max(3.0, 0.11 * total + 0.6)
    fig_h = 0.3 * (max(len(rows), 1) + 1)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.axis("off")
    table = ax.table(
        cellText=rows or [[""] * len(header)],
        colLabels=header,
        colWidths=[w / total for w in widths],
        cellLoc="center",
        bbox=[0.0, 0.0, 1.0, 1.0],  # the table fills the axes; the figure size sets row height
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (r, _c), cell in table.get_celld().items():
        cell.set_edgecolor("#888888")
        if r == 0:
            cell.set_facecolor("#dbe6f4")
            cell.set_text_props(weight="bold")
        elif r % 2 == 0:
            cell.set_facecolor("#f4f4f4")
    ax.set_title(title, fontsize=11, pad=6)
    return _save(fig, path_without_suffix)
