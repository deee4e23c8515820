"""ament_python build of qt_policy_node: installs the package, its launch files and params."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "qt_policy_node"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="ONNX Runtime policy node with a safety layer for the qt-robot stack.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["policy_node = qt_policy_node.node:main"]},
)
