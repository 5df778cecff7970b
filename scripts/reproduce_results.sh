#!/usr/bin/env bash
# Re-create every result file in results/ from the committed code, then the README's tables.
# About an hour on a 2-core CPU (two runs at a time, one thread each); minutes on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
train() { python -m utils.train --out results --no-progress --threads "${THREADS:-1}" "$@"; }

# The road: steps 1-5 on the validation split only (the test set is for the final model).
for step in 1_skeleton 2_deeper 3_batchnorm 4_dropout 5_augmentation; do
  train --model "$step" --seed 1 --no-test > "results/$step.log" 2>&1 &
  [ "$(jobs -r | wc -l)" -lt 2 ] || wait -n
done
# Five seeds each: step 6 of the road (the final model before its recipe was retuned), the final
# model (step 6 with the recipe retuned on validation) and the stretch model (< 20,000 parameters).
MULTI_SEED="6_onecycle 6b_tuned_recipe 7_stretch"
for model in $MULTI_SEED; do
  for seed in 1 2 3 4 5; do
    train --model "$model" --seed "$seed" > "results/${model}_seed$seed.log" 2>&1 &
    [ "$(jobs -r | wc -l)" -lt 2 ] || wait -n
  done
done
wait
# Variations of step 6's recipe, validation only (they chose 6b's recipe).
python scripts/try_recipes.py --jobs 2
for model in $MULTI_SEED; do
  python -m utils.train --model "$model" --seeds 1 2 3 4 5 --summarize --out results
done
python -m utils.report
