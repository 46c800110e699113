"""Self-ensemble check: SRCC of the default weights with "none" and "flips".

Both modes score the same seeded sample of 300 held-out synthetic pairs
(content-disjoint split, seed 0).

Run from the repository root after training/reproduce.sh step 1:
    OMP_NUM_THREADS=2 python training/eval/flips_vs_none.py
"""

import json
import random
import time

import torch
from scipy.stats import spearmanr

from asna_metric import ASNA
from asna_metric.data.readers import read_labels_csv
from asna_metric.data.splits import split_by_reference
from asna_metric.inputs import to_batch

records = []
for name in ("kodak24", "cbsd68"):
    records += [
        r
        for r in read_labels_csv(
            f"runs/synth/{name}/labels.csv", f"runs/synth/{name}", dataset="KADID-10k"
        )
        if r.dis_type != "identity"
    ]
_, held_out = split_by_reference(records, val_fraction=0.2, seed=0)
sample = random.Random(0).sample(list(held_out), 300)
default = ASNA()
result = {
    "weights": default.weights_name,
    "weights_sha256": default.weights_sha256,
    "pairs": len(sample),
}
with torch.inference_mode():
    for mode in ("none", "flips"):
        metric = ASNA(self_ensemble=mode)
        start = time.perf_counter()
        scores = [
            metric(to_batch(str(r.dist), name="d"), to_batch(str(r.ref), name="r")).item()
            for r in sample
        ]
        seconds = time.perf_counter() - start
        srcc = spearmanr(scores, [r.quality for r in sample]).statistic
        result[mode] = {
            "srcc": round(float(srcc), 4),
            "seconds_per_pair": round(seconds / len(sample), 3),
        }
        print(mode, result[mode], flush=True)
print(json.dumps(result))
with open("training/eval/flips_vs_none.json", "w") as handle:
    json.dump(result, handle, indent=2)
