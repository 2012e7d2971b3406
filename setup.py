"""Installs the three packages of the ERNIE 2.0 framework: ernie, propeller, data_gen."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="ernie2-framework",
    version="0.1.0",
    description="ERNIE 2.0 continual multi-task pre-training, fine-tuning and export on PaddlePaddle",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ernie", "ernie.*", "propeller", "propeller.*", "data_gen", "data_gen.*"]),
    include_package_data=True,
    package_data={"data_gen": ["demo/*.txt", "demo/*.md"], "ernie": ["csrc/*.cc"]},
    install_requires=_requirements(),
    license="Apache-2.0",
)
