"""Why `coffea-jetimg run` sets MALLOC_MMAP_THRESHOLD_ for its Dask workers.

Times one CNN forward over 4000 jet images (median of 5, one torch thread) in three child
processes: plain; with Dask's nanny setting MALLOC_TRIM_THRESHOLD_=65536; with that plus
MALLOC_MMAP_THRESHOLD_=64 MiB (what `run` adds). glibc reads these at process start, so each
setting needs its own process.

    python analysis/bench_worker_malloc.py [ARTIFACT]   (default: demo_output/models/cnn)
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import statistics, sys, time
import numpy as np
from coffea_jetimg.inference import Tagger
t = Tagger(sys.argv[1], device="cpu", num_threads=1)
x = np.random.default_rng(0).random((4000, *t.input_spec["shape"]), dtype=np.float32)
t.predict(x[:100])
ts = []
for _ in range(5):
    t0 = time.perf_counter(); t.predict(x); ts.append(time.perf_counter() - t0)
print(statistics.median(ts))
"""


def main() -> int:
    art = sys.argv[1] if len(sys.argv) > 1 else "demo_output/models/cnn"
    settings = {
        "plain": {},
        "nanny (MALLOC_TRIM_THRESHOLD_=65536)": {"MALLOC_TRIM_THRESHOLD_": "65536"},
        "nanny + MALLOC_MMAP_THRESHOLD_=64MiB": {"MALLOC_TRIM_THRESHOLD_": "65536",
                                                "MALLOC_MMAP_THRESHOLD_": str(64 << 20)},
    }
    res = {}
    for name, extra in settings.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(extra)
        out = subprocess.run([sys.executable, "-c", CHILD, art], env=env, capture_output=True, text=True, check=True)
        res[name] = float(out.stdout.strip().splitlines()[-1])
        print(f"{name:40s} {res[name]:.3f} s per 4000 jets")
    vals = list(res.values())
    print(f"RESULT nanny_over_plain={vals[1] / vals[0]:.2f} fixed_over_plain={vals[2] / vals[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
