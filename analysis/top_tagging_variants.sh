#!/bin/bash
# The training variants scored in analysis/results/top_tagging_holdout.md, then the holdout itself.
#
# Needs the 50k-per-class sample of analysis/top_tagging.py in analysis/data/top_tagging (--reuse) and
# that run's artifacts in analysis/results/top_tagging_artifacts. Each variant writes its results and
# artifacts under analysis/data/variants/<name>/. On 2 CPU threads the five trainings took 49 min
# (2026-11-23); the holdout ran on a 16-core machine (--workers 16, 7 min). Fewer workers give other
# events (each worker has its own seed stream) and take longer.
set -euo pipefail
cd "$(dirname "$0")/.."
V=analysis/data/variants
mkdir -p "$V"
C="--jets-per-class 50000 --epochs 40 --patience 6 --lr-decay 0.3 --lr-patience 2 --workers 2 --threads 2 --reuse"
run() { name=$1; shift; python analysis/top_tagging.py $C --results "$V/$name" "$@" > "$V/$name.log" 2>&1; tail -2 "$V/$name.log"; }
run deeptop_f025 --models deeptop --train-fraction 0.25   # data scaling: a quarter of the training jets
run deeptop_f050 --models deeptop --train-fraction 0.5    # half
run deeptop_m2 --models deeptop --model-seed 2            # other initialisations and batch orders
run deeptop_m3 --models deeptop --model-seed 3
run lola_wd3e-3 --models lola --lola-weight-decay 3e-3 --epochs 60 --patience 8
python analysis/top_tagging_holdout.py --top-jets 40000 --qcd-jets 200000 --top-budget-s 120 --qcd-budget-s 300 \
    --round-events 25000 --workers "${WORKERS:-16}" \
    --artifacts analysis/results/top_tagging_artifacts f025=$V/deeptop_f025/top_tagging_artifacts \
    f050=$V/deeptop_f050/top_tagging_artifacts m2=$V/deeptop_m2/top_tagging_artifacts \
    m3=$V/deeptop_m3/top_tagging_artifacts wd3=$V/lola_wd3e-3/top_tagging_artifacts \
    --ensemble cnn_x3=deeptop+m2:deeptop+m3:deeptop cnn_lola=deeptop+lola \
    cnn_x3_lola=deeptop+m2:deeptop+m3:deeptop+lola
