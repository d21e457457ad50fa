#!/usr/bin/env bash
# Observation-noise robustness of the shipped pick_place checkpoints: 100 unseen seeds each,
# nominal, 5 mrad arm-joint noise, 1 mm finger noise, both (see benchmarks/README.md).
# Usage: bash benchmarks/noise_robustness.sh [diffusion_pick_place carp_pick_place]
set -eu
OUT=benchmarks/results/noise
mkdir -p $OUT
for ck in ${@:-diffusion_pick_place carp_pick_place}; do
  run() { .venv/bin/rosmind eval --checkpoint checkpoints/$ck --episodes 100 --seed-start 100000 --n-envs 8 "$@"; }
  run --json $OUT/${ck}_nominal.json
  run --obs-noise joint_pos.arm=0.005 --json $OUT/${ck}_arm.json
  run --obs-noise joint_pos.gripper=0.001 --json $OUT/${ck}_finger.json
  run --obs-noise joint_pos.arm=0.005 --obs-noise joint_pos.gripper=0.001 --json $OUT/${ck}_both.json
  run --obs-noise joint_pos.arm=0.005 --obs-noise joint_pos.gripper=0.001 --anchor measured --json $OUT/${ck}_both_measured_anchor.json
done
