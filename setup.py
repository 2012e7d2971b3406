"""Installs the packages of the ERNIE 2.0 framework, bottom layer first: ernie_common (what data
generation and the model library share), propeller (the training engine), data_gen, ernie, and
ernie_tasks (the built-in pre-training tasks); the repository's configs/ as the package
ernie_configs, so the shipped configs are found after a plain `pip install .` too; and studies,
the tools behind docs/, which read and write a repository checkout (the editable install the
README uses: `pip install -e .`)."""
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
    python_requires=">=3.11",  # the pinned numpy, SciPy, scikit-learn and transformers need it
    packages=find_packages(include=["ernie_common", "propeller", "data_gen", "data_gen.*", "ernie", "ernie.*",
                                    "ernie_tasks", "studies"]) + ["ernie_configs"],
    package_dir={"ernie_configs": "configs"},
    include_package_data=True,
    package_data={"data_gen": ["demo/*.txt", "demo/*.md"], "ernie.kernels": ["csrc/*.cc"],
                  "ernie_configs": ["*/*.yaml", "*/*.txt"],
                  "studies": ["templates/*.md"]},
    install_requires=_requirements(),
    license="Apache-2.0",
)
