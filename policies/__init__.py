"""Policy families, the training loop and action executors (``rosmind.policies``). No rclpy."""
