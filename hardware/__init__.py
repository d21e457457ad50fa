"""Hardware drivers and teleop devices behind the Robot interface (``rosmind.hardware``). No rclpy."""
