"""ament_python build of qt_sim: installs the simulator package and its MJCF assets."""
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
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="MuJoCo tabletop arm, ROS 2 driver, scripted expert and teleop for qt-robot.",
    license="Apache-2.0",
    entry_points={"console_scripts": []},
)
