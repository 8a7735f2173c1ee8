"""How fast and how tight the importance-weighted log-likelihood is, on a real checkpoint.

For each K: the seconds to estimate log p(x) over the whole test split, the mean negative
log-likelihood (nats) and its standard error, next to the checkpoint's negative ELBO. A
reference estimator (the textbook loop: one image at a time, torch's own BCE) runs on a
subset in the same process, and the ratio of images per second is printed, so the figure
does not depend on the machine's speed that day.

    python benchmarks/likelihood.py CHECKPOINT --k 1,100,1000,5000 [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis.likelihood import iw_log_likelihood
from explorer.data.dataset import to_float
from explorer.evaluation.files import evaluation_data_config, load_evaluation_data
from explorer.training.checkpoint import load_checkpoint
from explorer.training.evaluate import evaluate_tensors


@torch.no_grad()
def reference_log_likelihood(model, images: torch.Tensor, k: int) -> torch.Tensor:
    """The textbook estimator, for timing: one image at a time, K samples in one batch."""
    out = []
    for i in range(images.shape[0]):
        x = to_float(images[i:i + 1])
        dist = model.encode(x)
        std = torch.exp(0.5 * dist.logvar)
        z = dist.mean + torch.randn(k, dist.mean.shape[1]) * std
        log_q = torch.distributions.Normal(dist.mean, std).log_prob(z).sum(1)
        log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        logits = model.decode_logits(z).flatten(1)
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x.flatten(1).expand_as(logits), reduction="none").sum(1)
        out.append(torch.logsumexp(log_px + log_p - log_q, 0) - math.log(k))
    return torch.stack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--k", default="1,100,1000,5000")
    parser.add_argument("--reference-images", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    data = load_evaluation_data(evaluation_data_config(ckpt.data_config, ckpt.model_config), ckpt.model_config)
    images = data.test_images
    neg_elbo = evaluate_tensors(model, images, None, seed=ckpt.train_config.seed)["loss"]
    rows = []
    for k in (int(v) for v in args.k.split(",")):
        start = time.perf_counter()
        nll = -iw_log_likelihood(model, images, None, k, seed=0)
        seconds = time.perf_counter() - start
        row = {"k": k, "seconds": seconds, "images": int(images.shape[0]), "iw_nll": float(nll.mean()),
               "iw_se": float(nll.std() / math.sqrt(nll.size)), "neg_elbo": neg_elbo}
        if args.reference_images:
            sub = images[:args.reference_images]
            t0 = time.perf_counter()
            reference_log_likelihood(model, sub, k)
            ref_rate = sub.shape[0] / (time.perf_counter() - t0)
            row["speedup_vs_reference"] = (images.shape[0] / seconds) / ref_rate
        rows.append(row)
        if not args.json:
            extra = f", {row['speedup_vs_reference']:.1f}x the reference" if "speedup_vs_reference" in row else ""
            print(f"K={k:>5}: {seconds:7.1f} s for {images.shape[0]:,} images{extra}; IW NLL "
                  f"{row['iw_nll']:.2f} ± {row['iw_se']:.2f} nats (negative ELBO {neg_elbo:.2f})", flush=True)
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "threads": torch.get_num_threads(), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
