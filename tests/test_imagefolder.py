"""packer.pytorch.ImageFolder against a re-implementation of torchvision's ImageFolder (torchvision
itself is not installable here): a training script changes its import and root, nothing else."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from packer import convert  # noqa: E402
from packer.demo import make_demo_tree  # noqa: E402
from packer.pytorch import ImageFolder  # noqa: E402
from packer.testing.trees import TORCHVISION_IMG_EXTENSIONS  # noqa: E402


def pil_loader(f: Any) -> Image.Image:
    with Image.open(f) as im:
        return im.convert("RGB")


class ReferenceImageFolder(Dataset[tuple[Any, Any]]):
    """torchvision.datasets.ImageFolder as its source defines it (find_classes, make_dataset,
    has_file_allowed_extension, pil_loader, __getitem__)."""

    def __init__(
        self,
        root: str,
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        loader: Callable[[Any], Any] = pil_loader,
        is_valid_file: Callable[[str], bool] | None = None,
    ) -> None:
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        valid = is_valid_file or (lambda p: p.lower().endswith(TORCHVISION_IMG_EXTENSIONS))
        self.samples = []
        for target_class in sorted(self.class_to_idx):
            folder = os.path.join(root, target_class)  # noqa: PTH118 - as torchvision writes it
            for dirpath, _, fnames in sorted(os.walk(folder, followlinks=True)):
                for fname in sorted(fnames):
                    path = os.path.join(dirpath, fname)  # noqa: PTH118
                    if valid(path):
                        self.samples.append((path, self.class_to_idx[target_class]))
        self.targets = [t for _, t in self.samples]
        self.transform, self.target_transform, self.loader = transform, target_transform, loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        path, target = self.samples[i]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_demo_tree(tmp_path_factory.mktemp("src") / "train", per_class=7, size=16)
    nested = root / "circle" / "more"
    nested.mkdir()
    (nested / "x.png").write_bytes((root / "circle" / "circle_0003.png").read_bytes())
    return root


def to_tensor(image: Image.Image) -> Any:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def test_a_training_script_sees_the_same_batches(tree: Path, tmp_path: Path) -> None:
    pack = convert(tree, tmp_path / "train.pack", "tar").path
    ours = ImageFolder(str(pack), transform=to_tensor, target_transform=lambda t: t * 10)
    ref = ReferenceImageFolder(str(tree), transform=to_tensor, target_transform=lambda t: t * 10)
    assert ours.classes == ref.classes and ours.class_to_idx == ref.class_to_idx
    assert ours.targets == ref.targets and len(ours) == len(ref)
    assert [name for name, _ in ours.samples] == [
        os.path.relpath(p, tree).replace(os.sep, "/") for p, _ in ref.samples
    ]
    assert ours.imgs == ours.samples and ours.find_classes(pack) == (ref.classes, ref.class_to_idx)
    for (x, y), (rx, ry) in zip(
        DataLoader(ours, batch_size=8), DataLoader(ref, batch_size=8), strict=True
    ):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_custom_loader_and_is_valid_file(tree: Path, tmp_path: Path) -> None:
    pack = convert(tree, tmp_path / "train.pack", "zip").path

    def grey(f: Any) -> Image.Image:
        with Image.open(f) as im:
            return im.convert("L")

    pngs = lambda name: name.endswith(".png")  # noqa: E731
    ours = ImageFolder(str(pack), loader=grey, is_valid_file=pngs)
    ref = ReferenceImageFolder(str(tree), loader=grey, is_valid_file=pngs)
    assert len(ours) == len(ref) > 0 and ours.targets == ref.targets
    for i in range(len(ref)):
        (a, ya), (b, yb) = ours[i], ref[i]
        assert a.mode == "L" and np.array_equal(np.asarray(a), np.asarray(b)) and ya == yb
