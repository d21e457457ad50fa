"""Physics backends, robots, tasks and scripted experts (``rosmind.sim``). No rclpy."""
