"""Fashion-MNIST: found where Debian's package puts it, listed by ``gradretention data``, and
one real epoch of logistic regression on the installed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.tasks import datacache
from gradretention.tasks.data_report import data_main
from gradretention.tasks.readers import find_dataset, locate
from gradretention.tasks.registry import get_task

from .readers.realformats import write_mnist

DEBIAN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # fmt: skip
INSTALLED = locate.DEBIAN_DATA_DIR / "fashion-mnist"


@pytest.fixture
def debian_root(tmp_path, monkeypatch) -> tuple[Path, dict]:
    """A stand-in for /usr/share/datasets holding fashion-mnist/ as the Debian package lays it out."""
    system = tmp_path / "usr-share-datasets"
    written = write_mnist(system / "fashion-mnist", np.random.default_rng(3), {"train": 24, "test": 6}, gz=True)
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (system,))
    datacache.clear_memory()
    yield system, written
    datacache.clear_memory()


def test_the_debian_layout_is_found_after_an_empty_data_dir(debian_root, tmp_path):
    system, written = debian_root
    assert sorted(p.name for p in (system / "fashion-mnist").iterdir()) == sorted(DEBIAN_FILES)
    empty = tmp_path / "data"
    assert find_dataset("fashion-mnist", empty) == system / "fashion-mnist"
    data = get_task("fmnist-logreg").load(0, empty)
    assert data.info["source"] == f"files: {system / 'fashion-mnist'}"
    assert data.test.targets.tolist() == written["test"][1].tolist()
    assert (len(data.train), len(data.val), len(data.test)) == (22, 2, 6)
    # Standardised with Fashion-MNIST's constants, not MNIST's.
    pixels = written["test"][0].astype(np.float64) / 255.0
    expected = (pixels - 0.2860) / 0.3530
    np.testing.assert_allclose(data.test.inputs[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_files_in_the_data_dir_win_over_the_system_package(debian_root, tmp_path, capsys):
    write_mnist(tmp_path / "data" / "FashionMNIST" / "raw", np.random.default_rng(4), {"train": 3, "test": 2})
    assert find_dataset("fashion-mnist", tmp_path / "data") == tmp_path / "data" / "FashionMNIST" / "raw"
    assert data_main(["--data-dir", str(tmp_path / "data")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Fashion-MNIST"))
    assert f"{tmp_path / 'data' / 'FashionMNIST' / 'raw'} (original files)" in line  # torchvision's layout


def test_missing_fashion_mnist_names_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (tmp_path / "nowhere",))
    with pytest.raises(FileNotFoundError, match=r"sudo apt-get install dataset-fashion-mnist") as caught:
        find_dataset("fashion-mnist", tmp_path)
    assert f"{tmp_path}/fashion-mnist/train-images-idx3-ubyte  (or train-images-idx3-ubyte.gz)" in str(caught.value)
    with pytest.raises(ValueError, match=r"'mnist' has no system package; datasets with one: fashion-mnist"):
        locate.apt_command("mnist")


def test_data_report_lists_the_package_folder_and_its_tasks(debian_root, tmp_path, capsys):
    system, _ = debian_root
    assert data_main(["--data-dir", str(tmp_path / "data")]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Fashion-MNIST"))
    assert line.split()[1] == "found"
    assert f"{system / 'fashion-mnist'} (installed by dataset-fashion-mnist)" in line
    assert line.endswith("(fmnist-logreg, fmnist-mlp, fmnist-cnn)")


@pytest.mark.skipif(not all((INSTALLED / name).is_file() for name in DEBIAN_FILES),
                    reason=f"Fashion-MNIST is not installed in {INSTALLED} (sudo apt-get install dataset-fashion-mnist)")
def test_one_epoch_of_logistic_regression_on_the_real_files_reaches_80_percent(tmp_path, monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_DATA_DIRS", (locate.DEBIAN_DATA_DIR,))
    datacache.clear_memory()
    # 430 Adam steps of batch 128 over the 55 000 training images; the 10 000 test images report.
    result = train(RunConfig(task="fmnist-logreg", optimizer="adam", epochs=1, batch_size=128), data_dir=tmp_path)
    datacache.clear_memory()
    assert result.status == "done", result.reason
    assert result.final["test_accuracy"] >= 0.80, result.final
