"""ament_python build of qt_data_logger: installs the recorder and converter package."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "qt_data_logger"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Episode recorder (rosbag2/MCAP) and bag-to-dataset converter for qt-robot.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "recorder = qt_data_logger.recorder_node:main",
            "synthetic_source = qt_data_logger.synthetic_source:main",
        ]
    },
)
