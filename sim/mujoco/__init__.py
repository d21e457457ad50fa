"""The MuJoCo backend (quadrupeds): models built with ``MjSpec``, terrains, the single-world
``MujocoQuadruped`` that robot_node hosts, and the batched stepping the RL env uses.

Nothing here imports rclpy or pybullet's physics client; ``pybullet_data`` is read only as a
folder of model files.
"""
