"""`ns info`: what a shard set, a pseudo-label folder, a checkpoint or a model name holds."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ns_cli.options import AsJson
from ns_data.errors import DataError
from ns_data.shards.manifest import MANIFEST_NAME

Description = tuple[list[str], dict[str, object]]
"""Lines for people and a JSON-able object for scripts (`--json`)."""


def describe_path(path: Path) -> Description:
    """Describe whatever `path` is; DataError when it is none of the known artifacts."""
    from ns_data.labels.store import SUFFIX

    if (path / MANIFEST_NAME).is_file() or "://" in str(path):
        from ns_data.shards.describe import describe_shard_set

        summary = describe_shard_set(path)
        return summary.lines(), {"kind": "shard-set", **asdict(summary)}
    if (path / "config.json").is_file() or str(path).startswith("local-dir:"):
        return describe_checkpoint(path)
    if path.is_dir() and any(path.glob(f"*{SUFFIX}")):
        return describe_pseudo_labels(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    raise DataError(f"{path} is not a shard set, checkpoint or pseudo-label folder made by ns")


def describe_checkpoint(path: Path) -> Description:
    """ns's view (metadata) and timm's view (architecture, classes, pretrained_cfg)."""
    from ns_models.checkpoint import LEGACY_FORMAT, open_checkpoint

    folder = open_checkpoint(path)
    config, timm_config = folder.config, folder.timm_config
    writer = f"written by ns {config.ns_version}" if config.ns_version else "not written by ns"
    ns_line = (
        f"ns: {config.model_name}, {config.num_classes} classes, {config.image_size} px, "
        f"EMA weights: {config.ema}; noise: dropout {config.noise.drop_rate:g}, "
        f"drop_path_rate {config.noise.drop_path_rate:g}"
    )
    if "steps" in config.extra:
        ns_line += f"; {config.extra['steps']} steps"
    scores = config.extra.get("eval")
    if isinstance(scores, dict) and isinstance(scores.get("top1"), float):
        ns_line += f"; top-1 {100 * scores['top1']:.2f}%"
    header = f"{folder.path}: checkpoint, layout {folder.layout}, {writer}, weights {folder.weights.name}"
    lines = [header, ns_line]
    if timm_config is None:
        lines.append(
            f"timm: none ({LEGACY_FORMAT} predates the timm layout; "
            f"`ns export {folder.path} --format timm OUT` writes a timm folder)"
        )
    else:
        cfg = timm_config.get("pretrained_cfg", timm_config)
        assert isinstance(cfg, dict)
        labels = timm_config.get("label_names") or cfg.get("label_names")
        names = list(labels) if isinstance(labels, list | tuple) else []
        shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
        keys = ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")
        lines += [
            f"timm: architecture {timm_config['architecture']}, num_classes "
            f"{timm_config.get('num_classes', cfg.get('num_classes'))}, label_names {shown or 'none'}",
            "timm pretrained_cfg: " + ", ".join(f"{k} {cfg[k]}" for k in keys if k in cfg),
            f'load in timm: timm.create_model("local-dir:{folder.path}", pretrained=True)',
        ]
    data: dict[str, object] = {
        "kind": "checkpoint",
        "path": str(folder.path),
        "layout": folder.layout,
        "weights": folder.weights.name,
        "ns": config.to_dict(),
        "timm": timm_config,
    }
    return lines, data


def describe_pseudo_labels(path: Path) -> Description:
    """How many images, by which teacher, how confident, and the top-1 class histogram."""
    import numpy as np

    from ns_data.labels.store import PseudoLabels

    store = PseudoLabels(path)
    top_class, confidence = store.top1()
    counts = np.bincount(top_class, minlength=store.num_classes).tolist()
    per_class = dict(zip(store.teacher.class_names, counts, strict=True))
    mean_confidence = float(confidence.astype(np.float32).mean())
    histogram = ", ".join(f"{n}: {c:,}" for n, c in per_class.items())
    lines = [
        f"{path}: pseudo labels for {len(store):,} images, top-{store.topk_class.shape[1]}, "
        f"by {store.teacher.model_name} ({store.teacher.checkpoint})",
        f"mean top-1 confidence {mean_confidence:.3f}",
        f"pseudo-label classes: {histogram}",
    ]
    data = {
        "kind": "pseudo-labels",
        "path": str(path),
        "images": len(store),
        "topk": int(store.topk_class.shape[1]),
        "teacher": asdict(store.teacher),
        "mean_confidence": mean_confidence,
        "top1_counts": per_class,
    }
    return lines, data


def info_command(
    path: Annotated[
        Path | None,
        typer.Argument(help="A shard set, pseudo-label folder or checkpoint (or local-dir:PATH)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Print the card of this model instead.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Summarize a shard set, a pseudo-label folder, a checkpoint, or (--model) a model card.

    A checkpoint shows ns's metadata and timm's view of it (architecture, classes, pretrained_cfg).

    Examples: ns info shards/train   ·   ns info runs/demo/teacher/checkpoint --json   ·   ns info --model efficientnet_b3
    """

    def run() -> None:
        if model is not None:
            from ns_models.card import card_lines, model_card

            card = model_card(model)
            lines, data = card_lines(card), {"kind": "model-card", **asdict(card)}
        elif path is not None:
            lines, data = describe_path(path)
        else:
            raise DataError("give a PATH or --model NAME (see `ns info --help`)")
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            for line in lines:
                typer.echo(line)

    run()


def register(app: typer.Typer) -> None:
    app.command("info")(info_command)
