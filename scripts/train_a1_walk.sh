#!/bin/sh
# The shipped walking policy (checkpoints/a1_walk): flat ground from scratch, then the same run
# resumed twice on the rough heightfield. Prints each phase's wall time and the total (the
# manifest's `training` records the last command only).
#   sh scripts/train_a1_walk.sh runs/a1_walk5
set -e
out=${1:-runs/a1_walk}
cd "$(dirname "$0")/.."
t0=$(date +%s)
.venv/bin/rosmind train --policy ppo_locomotion --task a1_velocity --out "$out" rl.iterations=450 env.num_envs=1024
t1=$(date +%s); echo "PHASE1_WALL_S $((t1 - t0))"
.venv/bin/rosmind train --policy ppo_locomotion --task a1_velocity --out "$out" --resume env.terrain=rough \
    rl.iterations=850 rl.max_minutes=30
t2=$(date +%s); echo "PHASE2_WALL_S $((t2 - t1))"
.venv/bin/rosmind train --policy ppo_locomotion --task a1_velocity --out "$out" --resume env.terrain=rough \
    rl.iterations=1050 rl.max_minutes=12
t3=$(date +%s); echo "PHASE3_WALL_S $((t3 - t2))"
echo "TOTAL_WALL_S $((t3 - t0))"
