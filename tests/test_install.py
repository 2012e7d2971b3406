"""A plain `pip install .` (not editable) ships everything a command needs: the packages of every
layer and the configs, found from a directory outside the checkout."""
import shutil
import subprocess
import sys
import sysconfig

from tests.conftest import REPO

CHECK = """
import sys
from pathlib import Path
import data_gen, ernie, ernie_common, ernie_tasks, propeller
from ernie.finetune.settings import config_for, load_settings
from ernie.model.config import ErnieConfig
from ernie_common import tasks
repo = Path(sys.argv[1])
for module in (data_gen, ernie, ernie_common, ernie_tasks, propeller):
    assert repo not in Path(module.__file__).parents, module.__file__
sst2 = config_for("SST-2")
assert sst2 is not None and repo not in sst2.parents, sst2
assert load_settings(sst2).batch_size == 256  # the shipped base preset, not the built-in default
assert ErnieConfig.from_file("configs/model/tiny.yaml", vocab_size=100).hidden_size == 256
assert tasks.get("sentence_reordering").task_id == 3
print("ok", sst2)
"""


def test_a_plain_install_finds_its_packages_and_configs(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the project from its wheel, built from a copy (pip builds in the source tree); its
    # dependencies borrowed from this environment
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "output", "data", "build",
                                                                 "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", site, str(source)], check=True, capture_output=True, text=True)
    with open(f"{site}/deps.pth", "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run([str(python), "-c", CHECK, str(REPO)], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
