"""rosmind: learned robot policies as ROS 2 nodes, with a sim that offers the real robot's topics.

The core (this package, ``rosmind.policies``, ``rosmind.sim``, ``rosmind.hardware``) never
imports rclpy; the ROS 2 shell lives in the ``rosmind_ros`` package.
"""

__version__ = "0.1.0"
