#!/usr/bin/env bash
# One prepared device check, under 5 minutes on one GPU: a tiny generation, a few training steps, the demo's teacher
# evaluation and the input-pipeline benchmark on the accelerator, their figures gathered in one JSON file.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU: writes $OUT/gpu_check.json (OUT: outputs/gpu_check)
#   bash benchmarks/gpu_check.sh --device cpu     # the same steps on the CPU, small (what tests/test_pipeline.py runs)
#
# Environment: DATASET (a folder with train/ and val/ class folders; default imagenette-mini), TEACHER (default
# efficientnet-lite0), OUT; ROWS, STEPS, PHOTOS override the sizes of the generation, the training, the benchmark;
# K the classes stored per crop (a teacher of fewer than 5 classes needs fewer).
set -euo pipefail

DEVICE=cuda
if [[ "${1:-}" == "--device" ]]; then DEVICE="${2:?--device needs a value: cuda or cpu}"; fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASET="$(realpath "${DATASET:-$REPO/../shared/data/imagenette-mini}")"
TEACHER="${TEACHER:-efficientnet-lite0}"
OUT="$(realpath -m "${OUT:-$REPO/outputs/gpu_check}")"
cd "$REPO"  # python -m benchmarks runs from the checkout
if [[ "$DEVICE" == cpu ]]; then
    export CUDA_VISIBLE_DEVICES=""  # generation and the demo run where torch finds an accelerator: hide it
    ROWS="${ROWS:-12}" STEPS="${STEPS:-2}" PHOTOS="${PHOTOS:-16}" SIZE=32 BATCH=4 CROPS=2 K=2 WORKERS=0
    TRAIN_FLAGS="--use_cpu true"
    BENCH_FLAGS="--sizes 32 --batch-crops 8 --crops 8 --rounds 1 --stored-crops 4 --num-crops 2 --classes 10"
else
    ROWS="${ROWS:-1024}" STEPS="${STEPS:-40}" PHOTOS="${PHOTOS:-256}" SIZE=224 BATCH=64 CROPS=4 K=5 WORKERS=8
    TRAIN_FLAGS="--bf16 true"
    BENCH_FLAGS="--rounds 3"
fi
rm -rf "$OUT" && mkdir -p "$OUT"
export DATASET TEACHER OUT ROWS DEVICE K

echo "== generation: $ROWS rows x 8 crops, teacher $TEACHER"
python - <<'EOF'
import dataclasses, json, os
from fkd_hf import GenerateConfig, generate

out = os.environ["OUT"]
summary = generate(GenerateConfig(dataset=f"imagefolder:{os.environ['DATASET']}", output_dir=f"{out}/labels",
                                  teacher=os.environ["TEACHER"], class_map="auto", stored_crops=8, k=int(os.environ["K"]),
                                  max_rows=int(os.environ["ROWS"]), batch_size=256, num_workers=8))
result = dataclasses.asdict(summary) | {"crops_per_s": summary.crops / summary.seconds}
open(f"{out}/generation.json", "w").write(json.dumps(result, indent=2))
EOF

echo "== training: $STEPS steps of $BATCH images x $CROPS crops at $SIZE px"
fkd-hf train --label_set "$OUT/labels" --dataset "imagefolder:$DATASET" --student resnet18 --input_size "$SIZE" \
    --num_crops "$CROPS" --per_device_train_batch_size "$BATCH" --max_steps "$STEPS" --eval_split none \
    --dataloader_num_workers "$WORKERS" --report_to none --save_strategy no --output_dir "$OUT/train" $TRAIN_FLAGS

echo "== teacher evaluation (the demo's)"
python - <<'EOF'
import json, os, time
from fkd_hf.demo.config import DemoConfig, device_type
from fkd_hf.demo.data import prepare_data
from fkd_hf.demo.teacher_eval import evaluate_teacher

config = DemoConfig(dataset=os.environ["DATASET"], teacher=os.environ["TEACHER"], num_workers=8).resolved()
start = time.perf_counter()
teacher = evaluate_teacher(config, prepare_data(config))
result = teacher.metrics | {"device": device_type(), "images": len(teacher.eval_labels),
                            "seconds": time.perf_counter() - start}
open(f"{os.environ['OUT']}/teacher_eval.json", "w").write(json.dumps(result, indent=2, default=str))
EOF

echo "== input pipeline"
python -m benchmarks pipeline --device "$DEVICE" --photos "$PHOTOS" --dataset "imagefolder:$DATASET" $BENCH_FLAGS \
    --output "$OUT/pipeline.json" > "$OUT/pipeline.md"

python - <<'EOF'
import json, os
import torch

out = os.environ["OUT"]
parts = {name: json.load(open(f"{out}/{file}")) for name, file in (
    ("generation", "generation.json"), ("training", "train/all_results.json"),
    ("teacher_eval", "teacher_eval.json"), ("pipeline", "pipeline.json"))}
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
result = {"device": os.environ["DEVICE"], "gpu": gpu, **parts}
open(f"{out}/gpu_check.json", "w").write(json.dumps(result, indent=2, default=str))
pipeline = parts["pipeline"]["cpu_s_per_1k_crops"]
print(f"gpu_check on {gpu or 'cpu'}: generation {parts['generation']['crops_per_s']:.0f} crops/s, training "
      f"{parts['training'].get('train_crops_per_second')} crops/s, teacher top-1 {parts['teacher_eval']['teacher_top1']:.3f}, "
      f"pipeline CPU-s per 1k crops {json.dumps(pipeline)}; all in {out}/gpu_check.json")
EOF
