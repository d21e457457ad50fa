#!/usr/bin/env bash
# Record 3 lockstep pick_place episodes (cameras on) with recorder_node auto_start, for
# scripts/reader_counts.py. "old" runs the recorder of commit 1b645e4 (the two files extracted
# to /tmp/oldrec, the rest of the graph as checked out), "new" the current one.
# Usage: scripts/record_sim_episodes.sh old|new OUT_DIR [launch args, e.g. wait_for_recorder:=true]
set -u
which=$1; out=$2; shift 2
export ROS_DOMAIN_ID=$((60 + RANDOM % 30))
rm -rf $out
if [ $which = old ]; then
  mkdir -p /tmp/oldrec
  git show 1b645e4:rosmind/recording.py > /tmp/oldrec/old_recording.py
  git show 1b645e4:ros2_ws/src/rosmind_ros/rosmind_ros/recorder_node.py \
    | sed 's/from rosmind.recording import/from old_recording import/' > /tmp/oldrec/old_recorder_node.py
  PYTHONPATH=/tmp/oldrec python /tmp/oldrec/old_recorder_node.py --ros-args -p out_dir:=$out -p auto_start:=true -p stop_on_outcome:=true -p use_sim_time:=true > $out.rec.log 2>&1 &
else
  python -m rosmind_ros.recorder_node --ros-args -p out_dir:=$out -p auto_start:=true -p stop_on_outcome:=true -p use_sim_time:=true > $out.rec.log 2>&1 &
fi
RP=$!
sleep 5
python -m rosmind.cli launch launch/sim_pick_place.launch.yaml episodes:=3 cameras:=true min_subscribers:=3 "$@" > $out.launch.log 2>&1
sleep 1; kill -INT $RP; wait $RP
