"""ament_python build of qt_teleop: keyboard and sensor_msgs/Joy teleop for real arms (no simulator)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "qt_teleop"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Keyboard and gamepad / 3D-mouse (sensor_msgs/Joy) teleop nodes for qt-robot.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "keyboard_teleop = qt_teleop.keyboard_teleop:main",
            "joy_teleop = qt_teleop.joy_teleop:main",
        ]
    },
)
