"""ament_python build of qt_sim: the simulator package, its MJCF assets, parameter YAML and launch file."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "qt_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["assets/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    description="MuJoCo tabletop arm, its ROS 2 driver and the scripted expert for qt-robot.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_driver = qt_sim.driver_node:main",
            "expert_teleop = qt_sim.expert_teleop:main",
        ]
    },
)
