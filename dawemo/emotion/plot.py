"""One figure per analysed file (matplotlib, Agg canvas; never pyplot, so no GUI backend is touched).

Layout at 16 x 10 in, 100 dpi (1600 x 1000 px):

- top left: the 8 emotions over time (1-9 rating scale); discrete emotions solid, the
  dimensional ones (valence, energy, tension) dashed. Time is the END of each analysis window.
- bottom left: the 7 mid-level features over time (0-1).
  Both shade the first seconds, where the window is still filling (less audio than --window-s).
- right: the clip summary explained: an 8 x 7 heatmap of each feature's signed contribution
  (weight x feature value, in rating points) to each emotion, diverging colours, values written
  in the cells; right-hand labels give ``bias + sum of the row = emotion``. The dominant
  discrete emotion is in bold and framed. E.g. a strongly blue (dissonance, happy) cell reads "happy is
  low because dissonance is high".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dawemo import constants as C
from dawemo.emotion.report import atomic_write, contributions, dominant_emotion

FIGSIZE_IN = (16.0, 10.0)
DPI = 100
# Fixed colours so the same emotion looks the same in every figure.
EMOTION_COLORS = {
    "valence": "#2ca02c", "energy": "#ff7f0e", "tension": "#7f7f7f", "anger": "#d62728",
    "fear": "#9467bd", "happy": "#e6ab02", "sad": "#1f77b4", "tender": "#e377c2",
}
DIMENSIONAL_EMOTIONS = ("valence", "energy", "tension")
MIDLEVEL_COLORMAP = "Dark2"
CONTRIBUTION_COLORMAP = "RdBu_r"  # red pushes an emotion up, blue pushes it down


def _window_filling_end_s(timeline: dict, window_s: float, stride_s: float) -> float | None:
    """Time of the first point whose window is full, or None if every point has a full window."""
    times, covered = timeline["time_s"], timeline["window_s"]
    for time_s, span_s in zip(times, covered):
        # A full window holds whole segment strides, so it may cover up to one stride less than window_s.
        if span_s >= window_s - stride_s - 1e-6:
            return None if time_s == times[0] else time_s
    return times[-1] if times else None


def _draw_curves(ax, times: np.ndarray, series: dict[str, list[float]], colors: dict[str, str],
                 styles: dict[str, str], fill_end_s: float | None) -> None:
    """Lines of ``series`` against ``times`` with the legend outside, right of the axes."""
    if fill_end_s is not None:
        ax.axvspan(0.0, fill_end_s, color="0.92", zorder=0, label="window filling")
    for name, values in series.items():
        ax.plot(times, values, color=colors[name], linestyle=styles.get(name, "-"), linewidth=2.0,
                marker="o" if len(times) == 1 else None, label=name.replace("_", " "))
    if len(times) == 0:
        ax.text(0.5, 0.5, "clip too short for a timeline point at this hop", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    ax.grid(True, color="0.88", linewidth=0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=10)


def _emotion_ylim(values: np.ndarray) -> tuple[float, float]:
    """Y range around the data, at least 2 rating points tall, inside the 1-9 scale unless the data
    leave it (the emotion map is linear: short windows can overshoot, and nothing is hidden)."""
    if values.size == 0:
        return 1.0, 9.0
    low, high = float(values.min()), float(values.max())
    pad = max(0.15 * (high - low), (2.0 - (high - low)) / 2, 0.0)
    bottom = max(1.0, low - pad) if low >= 1.0 else low - 0.2
    top = min(9.0, high + pad) if high <= 9.0 else high + 0.2
    return bottom, top


def _draw_contributions(fig, ax, document: dict, entry: dict) -> None:
    """The 8 x 7 signed contribution heatmap with annotated values and bias/sum labels."""
    from matplotlib.patches import Rectangle

    model = document["model"]
    emotions, features = model["emotions"], model["midlevel"]
    summary = entry["summary"]
    contrib = contributions(document, entry)
    limit = max(float(np.abs(contrib).max()), 1e-6)
    image = ax.imshow(contrib, cmap=CONTRIBUTION_COLORMAP, vmin=-limit, vmax=limit, aspect="auto")
    for row in range(len(emotions)):
        for col in range(len(features)):
            value = contrib[row, col]
            ax.text(col, row, f"{value:+.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(value) > 0.6 * limit else "black")
    # White cell borders keep neighbouring cells of similar colour apart.
    ax.set_xticks(np.arange(len(features) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(emotions) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(len(features)),
                  [f"{name.replace('_', ' ')} ({summary['midlevel'][name]:.2f})" for name in features],
                  rotation=35, ha="right", rotation_mode="anchor")
    dominant = dominant_emotion(document, entry)
    ax.set_yticks(range(len(emotions)), [f"{name}  {summary['emotions'][name]:.2f}" for name in emotions])
    for label, name in zip(ax.get_yticklabels(), emotions):
        label.set_fontweight("bold" if name == dominant else "normal")
    row = emotions.index(dominant)
    ax.add_patch(Rectangle((-0.5, row - 0.5), len(features), 1.0, fill=False, edgecolor="black",
                           linewidth=2.5, zorder=5, clip_on=False))
    # Right-hand labels: the arithmetic that gives each emotion.
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(range(len(emotions)),
                     [f"{b:.2f} {s:+.2f} = {summary['emotions'][n]:.2f}"
                      for n, b, s in zip(emotions, model["emotion_bias"], contrib.sum(axis=1))])
    right.tick_params(length=0)
    right.set_ylabel("bias + row sum = emotion (1-9)")
    ax.set_ylabel("emotion (clip summary value)")
    ax.set_title("Why: contribution of each mid-level feature to each emotion\n"
                 "(weight x feature value, rating points; red pushes up, blue pushes down)", fontsize=12)
    colorbar = fig.colorbar(image, ax=[ax, right], orientation="horizontal", fraction=0.05, pad=0.02, aspect=40)
    colorbar.set_label("contribution to the emotion (rating points)")


def _steady_note(document: dict) -> str:
    steady_s = document.get("steady_s", 0.0)
    return f", held steady ({steady_s:g} s) until the music changes" if steady_s else ""


def _headline(document: dict, entry: dict) -> str:
    """Second title line: the dominant emotion and the features that move it most."""
    dominant = dominant_emotion(document, entry)
    row = document["model"]["emotions"].index(dominant)
    contrib = contributions(document, entry)[row]
    names = document["model"]["midlevel"]
    up, down = int(np.argmax(contrib)), int(np.argmin(contrib))
    text = f"dominant: {dominant} {entry['summary']['emotions'][dominant]:.2f}"
    if contrib[up] > 0:
        text += f", pushed up most by {names[up].replace('_', ' ')} ({contrib[up]:+.2f})"
    if contrib[down] < 0:
        text += f", down most by {names[down].replace('_', ' ')} ({contrib[down]:+.2f})"
    return text


def render_file_figure(document: dict, entry: dict):
    """Build the figure of one analysed ``files[]`` entry of a report document -> matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    model = document["model"]
    timeline = entry["timeline"]
    times = np.asarray(timeline["time_s"], dtype=float)
    fill_end_s = _window_filling_end_s(timeline, document["window_s"], document["segment_stride_s"])

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0])
    ax_emotions = fig.add_subplot(grid[0, 0])
    ax_midlevel = fig.add_subplot(grid[1, 0], sharex=ax_emotions)
    ax_explain = fig.add_subplot(grid[:, 1])

    styles = {name: "--" for name in DIMENSIONAL_EMOTIONS}
    colors = {name: EMOTION_COLORS.get(name, f"C{i}") for i, name in enumerate(model["emotions"])}
    _draw_curves(ax_emotions, times, timeline["emotions"], colors, styles, fill_end_s)
    emotion_values = np.array([timeline["emotions"][n] for n in model["emotions"]], dtype=float)
    bottom, top = _emotion_ylim(emotion_values)
    ax_emotions.set_ylim(bottom, top)
    for edge in [v for v in C.EMOTION_SCALE if bottom < v < top]:  # short windows can overshoot the scale
        ax_emotions.axhline(edge, color="0.45", linewidth=1.0, linestyle=":", zorder=0)
    ax_emotions.set_ylabel("emotion rating (1-9 scale)")
    ax_emotions.set_title("Emotions over time", fontsize=12)
    ax_emotions.tick_params(labelbottom=False)

    from matplotlib import colormaps

    palette = colormaps[MIDLEVEL_COLORMAP].colors
    midlevel_colors = {name: palette[i % len(palette)] for i, name in enumerate(model["midlevel"])}
    _draw_curves(ax_midlevel, times, timeline["midlevel"], midlevel_colors, {}, fill_end_s)
    ax_midlevel.set_ylim(0.0, 1.0)
    ax_midlevel.set_ylabel("mid-level feature (0-1)")
    ax_midlevel.set_xlabel(f"time (s) at the end of each {document['window_s']:.1f} s analysis window")
    ax_midlevel.set_title("Mid-level perceptual features over time", fontsize=12)
    ax_midlevel.set_xlim(0.0, max(entry["duration_s"] or 0.0, float(times.max()) if times.size else 0.0))

    _draw_contributions(fig, ax_explain, document, entry)
    fig.suptitle(f"{Path(entry['path']).name}  -  {entry['duration_s']:.1f} s  -  model {model['name']} "
                 f"v{model['version']}, {document['window_s']:.1f} s windows every {document['hop_s']:.2f} s"
                 f"{_steady_note(document)}\n"
                 f"{_headline(document, entry)}", fontsize=14)
    return fig


def save_file_plot(document: dict, entry: dict, path: str | Path) -> None:
    """Render ``entry``'s figure and write it atomically; format from the suffix (png, pdf, svg)."""
    import matplotlib

    path = Path(path)
    with matplotlib.rc_context({"font.size": 11, "axes.spines.top": False, "axes.spines.right": False}):
        fig = render_file_figure(document, entry)
        fmt = path.suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda file: fig.savefig(file, format=fmt, dpi=DPI), binary=True)
