"""Maps the top-level folders onto the ``rosmind`` namespace (see DESIGN.md "Layout").

``policies/``, ``sim/``, ``hardware/`` install as ``rosmind.policies``, ``rosmind.sim``,
``rosmind.hardware``; the ROS 2 shell installs as ``rosmind_ros`` from its ament package.
Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {
    "rosmind": "rosmind",
    "rosmind.policies": "policies",
    "rosmind.sim": "sim",
    "rosmind.hardware": "hardware",
    "rosmind_ros": "ros2_ws/src/rosmind_ros/rosmind_ros",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
