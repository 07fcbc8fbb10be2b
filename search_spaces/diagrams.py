"""Architecture diagrams drawn with matplotlib (Agg backend; no graphviz binary needed).

* ``draw_stage_table(header, rows, path_without_suffix, title)`` - a per-stage table, used by
  the attention and computation-reallocation spaces (CR-NAS, Liang et al. ICLR 2020).
* ``draw_cell(blocks, path_without_suffix, title)`` and ``draw_cells([(title, blocks), ...],
  path_without_suffix)`` - a cell as a DAG of ops in the style of the NASNet (Zoph et al.,
  CVPR 2018) and DARTS (Liu et al., ICLR 2019) figures: the inputs h(i-2) and h(i-1) on the
  left, one numbered node per block (the sum of its two ops), edges labelled with their op and
  coloured by op family, and the concatenated output h(i) on the right, fed by dashed arrows
  from the unused blocks. A block is ``((input0, op0), (input1, op1))`` with input 0 = h(i-2),
  1 = h(i-1), 2 + j = block j. The layout is computed, not hand-placed: nodes by longest-path
  level, edges bent to clear nodes and each other, labels slid along their edge until they
  overlap nothing.

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


# ----------------------------------------------------------------------------- cell DAG
# Short op names as in the papers' figures, and a fill colour per op family.
_OP_TEXT = {
    "identity": "identity", "skip_connect": "identity",
    "sep_conv_3x3": "sep 3x3", "sep_conv_5x5": "sep 5x5", "sep_conv_7x7": "sep 7x7",
    "dil_conv_3x3": "dil 3x3", "dil_conv_5x5": "dil 5x5", "conv_7x1_1x7": "1x7 + 7x1",
    "avg_pool_3x3": "avg 3x3", "max_pool_3x3": "max 3x3",
}


def _op_colour(op: str) -> str:
    if op.startswith("sep"):
        return "#fde3a7"  # separable convs: amber
    if op.startswith("dil"):
        return "#f9c9cc"  # dilated convs: pink
    if op.startswith("conv") or op.startswith("nor_conv"):
        return "#dccdf6"  # plain convs: lilac
    if "pool" in op:
        return "#cfe6f7"  # pooling: blue
    return "#e6e6e6"  # identity and anything else: grey


_S = 0.62  # inches per data unit: the scale shared by every panel (the axes keep aspect 1)
_FONT = 8.5  # points, op labels
_DX, _DY = 2.9, 1.55  # spacing between levels (x) and between nodes of one level (y)
_R_BLOCK = 0.34  # radius of a block node
_IN_W, _IN_H = 1.1, 0.62  # size of the input / output boxes


def _text_box(text: str, fontsize: float = _FONT) -> tuple[float, float]:
    """Approximate (width, height) of a padded label in data units."""
    char_w = 0.62 * fontsize / 72 / _S
    return len(text) * char_w + 0.22, 1.75 * fontsize / 72 / _S


def _bezier(p0, p1, rad: float, t: float) -> tuple[float, float]:
    """Point at ``t`` on matplotlib's ``arc3,rad=rad`` curve from p0 to p1 (data coords, aspect 1)."""
    (x1, y1), (x2, y2) = p0, p1
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    u = 1 - t
    return u * u * x1 + 2 * u * t * cx + t * t * x2, u * u * y1 + 2 * u * t * cy + t * t * y2


def _overlap(a, b) -> float:
    """Overlap area of two boxes (cx, cy, w, h)."""
    ox = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    oy = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    return max(ox, 0.0) * max(oy, 0.0)


def _layout(blocks: Sequence) -> tuple[dict, tuple[float, float], list[int]]:
    """Positions of the states (0, 1 = inputs, 2 + k = block k) and of the output node, by
    longest-path level from the inputs; nodes of one level ordered by their inputs' mean height."""
    level = {0: 0, 1: 0}
    for k, block in enumerate(blocks):
        level[2 + k] = 1 + max(level[i] for i, _ in block)
    top = max(level.values())
    widest = max(sum(1 for n in level if level[n] == lv) for lv in range(1, top + 1))
    y_in = max(_DY / 2 + 0.15, 0.3 * (widest - 1) * _DY)  # inputs spread with the tallest column
    pos = {0: (0.0, y_in), 1: (0.0, -y_in)}  # h(i-2) above h(i-1)
    for lv in range(1, top + 1):
        nodes = [n for n in level if level[n] == lv]
        nodes.sort(key=lambda n: (-sum(pos[i][1] for i, _ in blocks[n - 2]) / 2, n))
        for r, n in enumerate(nodes):
            pos[n] = (lv * _DX, ((len(nodes) - 1) / 2 - r) * _DY)
    used = {i for block in blocks for i, _ in block}
    concat = [2 + k for k in range(len(blocks)) if 2 + k not in used]
    return pos, ((top + 1) * _DX, 0.0), concat


def _plan(blocks: Sequence) -> dict:
    """Where everything of a cell drawing goes (data units): nodes, edge curvatures, op labels.
    Edges bend (matplotlib ``arc3`` radius) to clear the nodes they would cross; each op label
    sits on its edge at the first position that overlaps no node, label or other edge."""
    pos, out_pos, concat = _layout(blocks)
    pos = dict(pos)
    pos["out"] = out_pos
    boxes = {n: (*pos[n], _IN_W + 0.1, _IN_H + 0.1) for n in (0, 1, "out")}
    boxes.update({2 + k: (*pos[2 + k], 2 * _R_BLOCK + 0.1, 2 * _R_BLOCK + 0.1) for k in range(len(blocks))})
    ts = [i / 20 for i in range(2, 19)]

    def clearance(src, dst, rad) -> float:
        worst = float("inf")
        for t in ts:
            x, y = _bezier(pos[src], pos[dst], rad, t)
            for node, (cx, cy, w, h) in boxes.items():
                if node not in (src, dst):
                    dx, dy = max(abs(x - cx) - w / 2, 0.0), max(abs(y - cy) - h / 2, 0.0)
                    worst = min(worst, (dx * dx + dy * dy) ** 0.5)
        return worst

    placed: list[list[tuple[float, float]]] = []  # sample points of the edges chosen so far
    mid = [i / 20 for i in range(3, 18)]

    def separation(src, dst, rad) -> float:
        pts = [_bezier(pos[src], pos[dst], rad, t) for t in mid]
        return min((((x - u) ** 2 + (y - v) ** 2) ** 0.5 for other in placed for x, y in pts for u, v in other),
                   default=float("inf"))

    def choose_rad(src, dst) -> float:
        cands = (0.0, 0.18, -0.18, 0.32, -0.32, 0.48, -0.48)
        scored = [(min(clearance(src, dst, r) / 0.15, separation(src, dst, r) / 0.2), -i, r)
                  for i, r in enumerate(cands)]
        ok = [sc for sc in scored if sc[0] >= 1.0]
        return (ok[0] if ok else max(scored))[2]

    def add(src, dst, rad, op):
        edges.append((src, dst, rad, op))
        placed.append([_bezier(pos[src], pos[dst], rad, t) for t in mid])

    edges: list = []  # (src, dst, rad, op); op None for the dashed concat edges
    for k, ((i0, op0), (i1, op1)) in enumerate(blocks):
        if i0 == i1:  # both inputs from one state: two arcs bending opposite ways
            add(i0, 2 + k, 0.28, op0)
            add(i1, 2 + k, -0.28, op1)
        else:
            add(i0, 2 + k, choose_rad(i0, 2 + k), op0)
            add(i1, 2 + k, choose_rad(i1, 2 + k), op1)
    for u in concat:
        add(u, "out", choose_rad(u, "out"), None)

    fine = [i / 60 for i in range(3, 58)]
    curves = [[_bezier(pos[a], pos[b], r, t) for t in fine] for a, b, r, _ in edges]
    labels = []  # (x, y, w, h, text, op)
    for e, (src, dst, rad, op) in enumerate(edges):
        if op is None:
            continue
        text = _OP_TEXT.get(op, op)
        w, h = _text_box(text)
        best = None
        for t in (0.5, 0.58, 0.42, 0.66, 0.34, 0.74, 0.26, 0.8, 0.2):
            x, y = _bezier(pos[src], pos[dst], rad, t)
            box = (x, y, w, h)
            cost = 4 * sum(_overlap(box, b) for b in boxes.values())
            cost += 4 * sum(_overlap(box, lab[:4]) for lab in labels)
            cost += 0.1 * sum(abs(px - x) < w / 2 and abs(py - y) < h / 2
                               for c, pts in enumerate(curves) if c != e for px, py in pts)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, box)
            if cost == 0:
                break
        labels.append((*best[1], text, op))

    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ys += [y + sgn * (h / 2) for x, y, w, h, *_ in labels for sgn in (1, -1)]
    # curved edges bulge: keep their extremes inside the picture
    ys += [py for pts in curves for _, py in pts]
    bounds = (min(xs) - _IN_W / 2 - 0.2, max(xs) + _IN_W / 2 + 0.2, min(ys) - 0.45, max(ys) + 0.45)
    return dict(pos=pos, concat=concat, edges=edges, labels=labels, bounds=bounds)


def _draw_plan(ax, plan: dict, n_blocks: int, title: str, xlim, ylim,
               input_names: Sequence[str], output_name: str) -> None:
    from matplotlib.patches import Circle, FancyBboxPatch

    pos, patches = plan["pos"], {}
    for node, text, colour in ((0, input_names[0], "#c9ecc4"), (1, input_names[1], "#c9ecc4"),
                               ("out", output_name, "#fdf1a8")):
        x, y = pos[node]
        patches[node] = FancyBboxPatch((x - _IN_W / 2, y - _IN_H / 2), _IN_W, _IN_H,
                                       boxstyle="round,pad=0.02,rounding_size=0.12", facecolor=colour,
                                       edgecolor="#333333", linewidth=1.1, zorder=3)
        ax.add_patch(patches[node])
        ax.text(x, y, text, ha="center", va="center", fontsize=11, zorder=4)
    for k in range(n_blocks):
        patches[2 + k] = Circle(pos[2 + k], _R_BLOCK, facecolor="#d5e3f7", edgecolor="#333333",
                                linewidth=1.1, zorder=3)
        ax.add_patch(patches[2 + k])
        ax.text(*pos[2 + k], str(k), ha="center", va="center", fontsize=10, weight="bold", zorder=4)
    for src, dst, rad, op in plan["edges"]:
        style = dict(color="#444444", lw=1.1) if op else dict(color="#8a8a8a", lw=1.0, linestyle=(0, (4, 2)))
        ax.annotate("", xy=pos[dst], xytext=pos[src], zorder=1,
                    arrowprops=dict(arrowstyle="-|>,head_length=0.5,head_width=0.25",
                                    connectionstyle=f"arc3,rad={rad}", patchA=patches[src], patchB=patches[dst],
                                    shrinkA=1, shrinkB=1, **style))
    for x, y, _w, _h, text, op in plan["labels"]:
        ax.text(x, y, text, ha="center", va="center", fontsize=_FONT, zorder=5,
                bbox=dict(boxstyle="round,pad=0.22", facecolor=_op_colour(op), edgecolor="#777777", linewidth=0.6))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=12, weight="bold", loc="left")


def draw_cells(cells: Sequence[tuple[str, Sequence]], path_without_suffix: str,
               input_names: Sequence[str] = ("$h_{i-2}$", "$h_{i-1}$"), output_name: str = "$h_{i}$") -> list[str]:
    """Draw several cells, one panel each, stacked top to bottom at one scale.

    ``cells`` is ``[(title, blocks), ...]``; ``blocks`` a sequence of blocks, each a pair
    ``((input0, op0), (input1, op1))`` where input 0 = h(i-2), 1 = h(i-1), 2 + j = block j (the
    NASNet/DARTS genotype). Blocks are numbered nodes (their two op results are added); every
    edge carries its op; unused blocks feed the output by dashed arrows (concatenation).
    Writes ``<path>.png`` and ``<path>.svg``; returns the paths."""
    if not cells:
        raise ValueError("draw_cells needs at least one cell")
    for title, blocks in cells:
        for k, block in enumerate(blocks):
            for i, _op in block:
                if not 0 <= i < k + 2:
                    raise ValueError(f"{title}: block {k} reads state {i}; valid states are 0 .. {k + 1}")
    plt = _pyplot()
    plans = [_plan(blocks) for _, blocks in cells]
    x0 = min(p["bounds"][0] for p in plans)
    width = max(p["bounds"][1] for p in plans) - x0
    heights = [p["bounds"][3] - p["bounds"][2] for p in plans]
    title_h = 0.42  # inches above each panel for its title
    fig_h = sum(h * _S + title_h for h in heights)
    fig = plt.figure(figsize=(width * _S, fig_h))
    top = fig_h
    for (title, blocks), plan, h in zip(cells, plans, heights):
        top -= title_h
        # Axes placed exactly, so one data unit is _S inches in every panel.
        ax = fig.add_axes((0.0, (top - h * _S) / fig_h, 1.0, h * _S / fig_h))
        top -= h * _S
        _draw_plan(ax, plan, len(blocks), title, (x0, x0 + width), plan["bounds"][2:],
                   input_names, output_name)
    return _save(fig, path_without_suffix)


def draw_cell(blocks: Sequence, path_without_suffix: str, title: str = "cell",
              input_names: Sequence[str] = ("$h_{i-2}$", "$h_{i-1}$"), output_name: str = "$h_{i}$") -> list[str]:
    """Draw one cell (see `draw_cells` for the genotype format); returns the .png and .svg paths."""
    return draw_cells([(title, blocks)], path_without_suffix, input_names, output_name)
