"""``latent-explorer anomaly``: anomaly scores of the test split."""

from __future__ import annotations

import argparse
import json

from explorer.cli.common import _load, _one_line, check_checkpoint
from explorer.cli.signals import _Signals


def check_anomaly_args(args: argparse.Namespace) -> None:
    """The checkpoint's path, before torch is imported."""
    check_checkpoint(args.checkpoint)


def cmd_anomaly(args: argparse.Namespace, signals: _Signals | None = None) -> int:
    from explorer.analysis.anomaly import anomaly_report
    from explorer.config import replace
    from explorer.data import load_dataset
    from explorer.errors import UserError

    ckpt, model, _ = _load(args.checkpoint)
    normal = args.normal or ckpt.data_config.classes
    if not normal:
        raise UserError("this model was trained on every class; say which are normal with --normal K,K")
    data = load_dataset(replace(ckpt.data_config, classes=None))
    if data.image_shape != ckpt.model_config.image_shape:
        raise UserError(f"{data.name} has images of shape {data.image_shape}; "
                        f"the model expects {ckpt.model_config.image_shape}")
    try:
        report = anomaly_report(model.cpu(), data, tuple(normal))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    names = ckpt.class_names or data.class_names
    result = {"model": ckpt.model_config.preset, "dataset": data.name, "normal_classes": list(report.normal_classes),
              "score": "negative ELBO (nats)" if model.is_generative else "reconstruction loss",
              "auc": report.auc, "auc_per_class": {str(k): v for k, v in report.auc_per_class.items()}}
    if args.per_image:
        result["scores"] = [{"index": i, "label": int(label), "score": float(score)}
                            for i, (label, score) in enumerate(zip(report.labels, report.scores, strict=True))]
    if args.json:
        print(json.dumps(result))
        return 0
    label = ", ".join(_one_line(names[k], 80) if k < len(names) else str(k) for k in report.normal_classes)
    print(f"normal: {label}; score: {result['score']}; ROC AUC {report.auc:.4f}")
    for k, auc in report.auc_per_class.items():
        print(f"  {_one_line(names[k], 80) if k < len(names) else k}: AUC {auc:.4f}")
    if args.per_image:
        print("index,label,score")
        for row in result["scores"]:
            print(f"{row['index']},{row['label']},{row['score']:.6g}")
    return 0
