"""Tiny test-only "nodes" for tests/test_launch.py (run as ``python -m fake_nodes.<name>``).

sleeper, crasher, stubborn and show_args are plain Python (no ROS); talker and listener are
real rclpy nodes that exchange std_msgs/String.
"""
