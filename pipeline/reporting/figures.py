"""Matplotlib figures for the reports, returned as base64 PNG data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def to_data_uri(figure: plt.Figure) -> str:
    """Render ``figure`` to a ``data:image/png;base64,...`` URI and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plain(text: object) -> str:
    """``text`` for matplotlib with ``$`` escaped, so names are never parsed as math."""
    return str(text).replace("$", r"\$")


def learning_curves(logs: Mapping[str, pd.DataFrame]) -> str | None:
    """Training loss and validation Dice per class over epochs, one line per fold."""
    if not logs:
        return None
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.6))
    for fold, frame in sorted(logs.items()):
        ax_loss.plot(frame["epoch"], frame["train_loss"], marker=".", label=fold)
        for column in [c for c in frame.columns if c.startswith("val_dice_") and c != "val_dice_mean"]:
            valid = frame[["epoch", column]].dropna()
            ax_dice.plot(valid["epoch"], valid[column], marker="o", label=plain(f"{fold} {column.removeprefix('val_dice_')}"))
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax_dice.set(xlabel="epoch", ylabel="Dice", title="Validation Dice (preprocessed grid)", ylim=(0, 1))
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return to_data_uri(fig)


def metric_strips(per_case: pd.DataFrame, metrics: Sequence[str]) -> str | None:
    """Box plots with every case as a dot, per class, one panel per metric."""
    metrics = [m for m in metrics if m in per_case.columns]
    if per_case.empty or not metrics:
        return None
    classes = list(dict.fromkeys(per_case["class"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes[0], metrics):
        data = [per_case.loc[per_case["class"] == c, metric].dropna().to_numpy() for c in classes]
        ax.boxplot([d if d.size else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(classes) + 1), [plain(c) for c in classes], rotation=20, fontsize=8)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    return to_data_uri(fig)


def metric_vs_volume(per_case: pd.DataFrame, metrics: Sequence[str] = ("dice", "hd95")) -> str | None:
    """Each of ``metrics`` against the reference volume (ml) of the structure, per class.

    Cases whose reference is empty (volume 0) are drawn at 0; the x axis turns logarithmic
    when the positive volumes span more than a factor of 100.
    """
    metrics = [m for m in metrics if m in per_case.columns]
    if per_case.empty or not metrics or "volume_ref_ml" not in per_case.columns:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.4), squeeze=False)
    volumes = per_case["volume_ref_ml"].to_numpy(dtype=float)
    positive = volumes[volumes > 0]
    wide = positive.size > 0 and positive.max() > 100 * positive.min()
    for ax, metric in zip(axes[0], metrics):
        for name, part in per_case.groupby("class", sort=False):
            ax.scatter(part["volume_ref_ml"], part[metric], label=plain(name), s=16)
        ax.set(xlabel="reference volume (ml)", ylabel=metric, title=f"{metric} vs structure volume")
        if wide:
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return to_data_uri(fig)
