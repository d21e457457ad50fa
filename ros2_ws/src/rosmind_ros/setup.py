"""ament_python build of the rosmind ROS 2 nodes (``colcon build`` in ros2_ws/).

In the pip-only setup the repository's top-level setup.py already installs ``rosmind_ros``
into the venv; this file is for a full ROS install, where ``ros2 run rosmind_ros robot_node``
and ``ros2 launch rosmind_ros sim_pick_place.launch.yaml`` should work. The launch files live
in the repository's top-level ``launch/`` folder (fixed by the layout), three levels up.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "rosmind_ros"
# Relative to this file's folder (colcon runs setup.py from it); data_files wants relative paths.
LAUNCH = "../../../launch"
NODES = ("robot_node", "hardware_node", "ft_sensor_node", "camera_node", "policy_node", "safety_node", "teleop_node", "recorder_node", "replay")

data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
    (f"share/{PACKAGE}", ["package.xml"]),
]
if Path(__file__).resolve().parent.joinpath(LAUNCH).is_dir():
    data_files.append((f"share/{PACKAGE}/launch", sorted(glob(f"{LAUNCH}/*.launch.yaml"))))
    data_files.append((f"share/{PACKAGE}/launch/config", sorted(glob(f"{LAUNCH}/config/*.yaml"))))

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rosmind developers",
    maintainer_email="rosmind@example.com",
    description="Thin ROS 2 nodes of rosmind (robot, policy, safety, teleop)",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{n} = {PACKAGE}.{n}:main" for n in NODES]},
)
