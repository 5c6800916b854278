"""The one picture of the whole catalog: a forest plot of every hypothesis's standardized effect.

Raw effects live on different scales (a loss gap, an accuracy gap, a ratio), so the plot puts
each on the seed-to-seed spread of its own paired differences (d = mean_diff / sd_diff, the
interval divided by the same sd). The x axis is linear within +-1 and logarithmic beyond it, cut at
+-30 with the value written (seeds that barely vary give d in the hundreds). Each verdict has a
shape as well as a colour (hollow and faded where no answer is read: undertrained, out of regime,
exploratory), and a hypothesis judged against a margin or a claimed size shows it as a bar. The SVG is deterministic (fixed hash salt,
no date), so a rebuild from the same results gives the same bytes.
"""

from __future__ import annotations

import html
import io
import re
from typing import Any

COLOURS = {"supported": "#1b7a34", "contradicted": "#c0262d", "inconclusive": "#8a8a8a", "undertrained": "#7b3fa0",
           "smaller than claimed": "#6aa84f", "out of regime": "#c27ba0", "exploratory": "#b7b7b7"}
# A shape per verdict, so that no verdict is told apart by its colour alone (green and red look alike to a
# deuteranope); hollow shapes and a faded line for the verdicts that decide nothing about the claim.
MARKERS = {"supported": ("o", True), "contradicted": ("X", True), "smaller than claimed": ("D", True),
           "inconclusive": ("o", False), "undertrained": ("s", False), "out of regime": ("^", False), "exploratory": ("o", False)}
UNDECIDED = ("undertrained", "out of regime", "exploratory")  # no answer read from them: drawn faded
LINTHRESH = 1.0  # |d| below this is drawn on a linear scale
CAP = 30.0  # |d| beyond this is drawn at the cap with its value written: seeds that barely vary give d in the hundreds


def _label(text: str, width: int = 58) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _padded(end: float, side: int) -> float:
    """An axis end a little beyond the farthest interval, on the symlog scale (at least +-1)."""
    end = min(end, -1.0) if side < 0 else max(end, 1.0)
    return end * 1.6 if abs(end) > LINTHRESH else end + 0.5 * side


def forest_rows(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hypothesis of every report, in the index's order, with its claim's label, the claim page's
    anchor of that hypothesis (the row links there) and the verdict and section the index's filters select on."""
    rows = []
    for c in claims:
        for r in c["reports"]:
            head = f"{c['claim_id'] + ' ' if c['claim_id'] else ''}{c['name']}" + (f" ({r['profile']})" if r["profile"] != "quick" else "")
            for h in r["hypotheses"]:
                rows.append({"group": head, "label": _label(h["name"]), "claim": c["name"], "section": c.get("section", ""),
                             "page": c.get("page", ""), "href": f"{c.get('page', '')}#h-{r['profile']}-{h.get('index', 0)}",
                             **{k: h.get(k) for k in ("d", "d_low", "d_high", "d_bar", "verdict")}})
    return rows


def _tagged(svg: str, tags: dict[str, dict[str, str]]) -> str:
    """Give each drawn row's groups (matplotlib writes an artist's gid as ``<g id=...>``) the data attributes
    the index's filters select on, so the page can fade the rows a filter leaves out."""
    def attrs(match: re.Match) -> str:
        gid = match.group(1)
        row = tags.get(gid.rsplit("-", 1)[0])
        if row is None:
            return match.group(0)
        extra = "".join(f' data-{k}="{html.escape(v, quote=True)}"' for k, v in row.items())
        return f'<g id="{gid}"{extra}'
    svg = svg.replace(' target="_blank"', "")  # matplotlib opens links in a new tab; a row's link is the page's own
    return re.sub(r'<g id="(f[hc]-\d+-[a-z]+)"', attrs, svg)


def inline(svg: str) -> str:
    """The SVG as an element to put in a page (its XML prolog and doctype dropped): inline, its links work and the
    page's script reaches its rows."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def forest_svg(claims: list[dict[str, Any]]) -> str:
    """The forest plot as SVG text (empty string when there is no hypothesis to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = forest_rows(claims)
    if not rows:
        return ""
    rc = {"svg.hashsalt": "labbench-site", "svg.fonttype": "none", "font.size": 8, "font.family": "DejaVu Sans"}
    with plt.rc_context(rc):
        height = 0.8 + 0.19 * (len(rows) + len({r["group"] for r in rows}))
        fig, ax = plt.subplots(figsize=(12.0, height))
        y, ticks, labels, spans, links = 0.0, [], [], [], []
        tags: dict[str, dict[str, str]] = {}  # a row's gid prefix -> the data attributes the filters read
        group = None
        for k, r in enumerate(rows):
            if r["group"] != group:  # a claim's header line, then its hypotheses
                group = r["group"]
                y -= 1
                ticks.append(y)
                labels.append(group)
                spans.append([y, y])
                head = f"fc-{len(spans) - 1}"
                links.append((head, r["page"]))
                tags[head] = {"claim": r["claim"], "section": r["section"]}
            y -= 1
            spans[-1][1] = y
            ticks.append(y)
            labels.append("    " + r["label"])
            gid = f"fh-{k}"
            links.append((gid, r["href"]))
            tags[gid] = {"claim": r["claim"], "section": r["section"], "verdict": r["verdict"] or ""}
            drawn = []  # this row's artists: each links to the hypothesis on its claim's page
            colour = COLOURS.get(r["verdict"], "#333333")
            marker, filled = MARKERS.get(r["verdict"], ("o", True))
            alpha = 0.45 if r["verdict"] in UNDECIDED else 1.0
            if r["d"] is None:
                drawn.append(("note", ax.text(0, y, "no spread across seeds: not standardized", va="center", ha="center", fontsize=7, color=colour, style="italic")))
            else:
                low, high, d = (max(-CAP, min(CAP, v)) for v in (r["d_low"], r["d_high"], r["d"]))
                drawn.append(("line", ax.plot([low, high], [y, y], color=colour, linewidth=1.6, solid_capstyle="butt", alpha=alpha)[0]))
                drawn.append(("mark", ax.plot([d], [y], marker=marker, markersize=4.2, color=colour, markerfacecolor=colour if filled else "white",
                        markeredgewidth=1.0, alpha=max(alpha, 0.7), zorder=3)[0]))
                if abs(r["d_high"]) > CAP or abs(r["d_low"]) > CAP:  # capped: the value written at the edge
                    side = 1 if r["d"] > 0 else -1
                    drawn.append(("cut", ax.annotate(f"d = {r['d']:.3g} (cut at {side * CAP:g})", (side * CAP, y), xytext=(-4 * side, 3),
                                textcoords="offset points", ha="right" if side > 0 else "left", va="bottom", fontsize=6.5, color=colour)))
                if r.get("d_bar") is not None and abs(r["d_bar"]) <= CAP:  # the margin or claimed size the interval must clear
                    drawn.append(("bar", ax.plot([r["d_bar"]], [y], marker="|", markersize=8, markeredgewidth=1.4, color="black", zorder=4)[0]))
            for part, artist in drawn:
                artist.set_gid(f"{gid}-{part}")
                artist.set_url(r["href"])
        for top, bottom in spans[::2]:  # every other claim on a grey band
            ax.axhspan(bottom - 0.5, top + 0.5, color="#f0f0f0", zorder=-2, linewidth=0)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xscale("symlog", linthresh=LINTHRESH)
        ends = [max(-CAP, min(CAP, x)) for r in rows if r["d"] is not None for x in (r["d_low"], r["d_high"], *([r["d_bar"]] if r.get("d_bar") is not None else []))]
        ax.set_xlim(_padded(min(ends, default=-1.0), -1), _padded(max(ends, default=1.0), 1))
        ax.set_yticks(ticks, labels)
        for tick, text, (gid, href) in zip(ax.get_yticklabels(), labels, links):
            if not text.startswith("    "):
                tick.set_fontweight("bold")
            tick.set_gid(f"{gid}-label")
            tick.set_url(href)
        ax.set_ylim(y - 0.7, -0.3)
        ax.set_xlabel("standardized effect d = mean paired difference / its sd across seeds (positive = as predicted)")
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", length=0)
        ax.xaxis.set_ticks_position("both")
        ax.tick_params(axis="x", labeltop=True)
        handles = [Line2D([], [], color=c, marker=MARKERS[v][0], markersize=4.5, markerfacecolor=c if MARKERS[v][1] else "white",
                          linewidth=1.6, alpha=0.45 if v in UNDECIDED else 1.0, label=v) for v, c in COLOURS.items()]
        handles.append(Line2D([], [], color="black", marker="|", markersize=8, markeredgewidth=1.4, linewidth=0, label="margin / claimed size"))
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), borderaxespad=2.2, ncol=(len(handles) + 1) // 2, fontsize=8, frameon=False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "labbench site (matplotlib)"})
        plt.close(fig)
    return _tagged(buf.getvalue(), tags)
