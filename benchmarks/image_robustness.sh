#!/usr/bin/env bash
# Robustness of the image pick_place checkpoints on unseen seeds (100000..): nominal, the light
# changed, the cameras moved 1 cm / 2 degrees, one distractor object (see benchmarks/README.md).
# Usage: EPISODES=100 bash benchmarks/image_robustness.sh [diffusion_pick_place_rgb diffusion_pick_place_rgb_dr]
set -eu
OUT=benchmarks/results/image_robustness
N=${EPISODES:-100}
mkdir -p $OUT
for ck in ${@:-diffusion_pick_place_rgb diffusion_pick_place_rgb_dr}; do
  run() { .venv/bin/rosmind eval --checkpoint checkpoints/$ck --episodes $N --seed-start 100000 --n-envs 8 "$@"; }
  run --json $OUT/${ck}_nominal.json
  run --task-option "light_direction=[1.0,1.0,0.5]" --task-option "light_color=[1.0,0.85,0.7]" --json $OUT/${ck}_light.json
  run --task-option "camera_offset=[0.01,0.0,0.0,0.0,2.0,0.0]" --json $OUT/${ck}_camera_moved.json
  run --task-option distractors=1 --json $OUT/${ck}_distractor.json
done
