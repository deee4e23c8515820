"""ament_python build of qt_eval: evaluation (sim over ROS, in process, on a real robot), the
report, ``qt demo`` and the orchestration of collection (``qt collect``)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "qt_eval"

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
    description="Evaluation plans and runners, reports, qt demo and collection orchestration for qt-robot.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["robot_eval = qt_eval.robot:main"]},
)
