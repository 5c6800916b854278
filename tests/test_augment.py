"""The fast data path: batched on-device augmentation equals torchvision's per-sample
transforms, in-memory batches equal a standard DataLoader's, and both are the same on any
device and under any number of DDP processes."""

from __future__ import annotations

import pytest
import torch
from helpers_torchvision_files import write_cifar10
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms.v2 import functional as TF

from labbench.data.augment import CropFlip
from labbench.data.base import IndexBatches
from labbench.data.embedded import Digits
from labbench.data.text import RandomWindows
from labbench.data.torchvision_sets import CIFAR10

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n: int = 12, c: int = 3, h: int = 8, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _reference(x: torch.Tensor, params: dict[str, torch.Tensor], aug: CropFlip, fill: list[float]) -> torch.Tensor:
    """torchvision, one image at a time: pad with ``fill``, crop at the offsets, flip."""
    out = []
    for img, (top, left), flip in zip(x, params["offsets"].tolist(), params["flips"].tolist()):
        img = TF.pad(img, [aug.padding], fill=fill)
        img = TF.crop(img, top, left, x.shape[-2], x.shape[-1])
        out.append(TF.horizontal_flip(img) if flip else img)
    return torch.stack(out)


@pytest.mark.parametrize("padding,flip", [(4, 0.5), (2, 0.0), (0, 1.0), (3, 1.0)])
def test_batched_crop_flip_equals_torchvision_per_sample(padding, flip):
    aug, x = CropFlip(padding, flip), _images()
    params = aug.sample(len(x), torch.Generator().manual_seed(1))
    fill = torch.tensor([-1.5, 0.25, 2.0])
    assert torch.equal(aug.apply(x, params, fill), _reference(x, params, aug, fill.tolist()))


def test_crop_offsets_shift_the_image_and_fill_the_border():
    aug, x = CropFlip(padding=2, flip=0.0), _images(n=2, c=1)
    params = {"offsets": torch.tensor([[2, 2], [0, 0]]), "flips": torch.tensor([False, False])}
    out = aug.apply(x, params, torch.tensor([-7.0]))
    assert torch.equal(out[0], x[0])  # centred crop: unchanged
    assert torch.equal(out[1, :, 2:, 2:], x[1, :, :-2, :-2])  # moved down and right by 2
    assert (out[1, :, :2, :] == -7.0).all() and (out[1, :, :, :2] == -7.0).all()


def test_every_shift_and_both_flips_occur():
    aug = CropFlip(padding=1, flip=0.5)
    params = aug.sample(2000, torch.Generator().manual_seed(0))
    assert set(map(tuple, params["offsets"].tolist())) == {(i, j) for i in range(3) for j in range(3)}
    assert 0.45 < params["flips"].float().mean() < 0.55


def test_bad_parameters_say_what_is_valid():
    with pytest.raises(ValueError, match="probability in"):
        CropFlip(4, flip=1.5)
    with pytest.raises(ValueError, match=">= 0 pixels"):
        CropFlip(-1)


def _reference_batches(x, y, batch_size, seed, passes, aug=None, fill=None):
    """A standard DataLoader over a TensorDataset, sampling in the pass's permutation,
    augmented one image at a time with torchvision."""
    out = []
    for p in range(passes):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + p)
        order = torch.randperm(len(x), generator=generator)
        n_batches = len(x) // batch_size
        params = aug.sample(n_batches * batch_size, generator) if aug else None
        loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=order.tolist(), drop_last=True)
        for b, (xb, yb) in enumerate(loader):
            if aug:
                part = {k: v[b * batch_size : (b + 1) * batch_size] for k, v in params.items()}
                xb = _reference(xb, part, aug, fill.tolist())
            out.append((xb, yb))
    return out


@pytest.mark.parametrize("augment", [False, True])
def test_fast_path_yields_the_reference_batches_for_a_seed(augment):
    x, y = _images(n=50), torch.arange(50)
    aug, fill = (CropFlip(3, 0.5), torch.tensor([0.5, -0.5, 1.0])) if augment else (None, None)
    loader = IndexBatches(x, y, 8, shuffle=True, seed=4, drop_last=True, augment=aug, fill=fill)
    fast = [b for _ in range(2) for b in loader]  # two passes
    reference = _reference_batches(x, y, 8, seed=4, passes=2, aug=aug, fill=fill)
    assert len(fast) == len(reference) == 12
    for (fx, fy), (rx, ry) in zip(fast, reference):
        assert torch.equal(fy, ry) and torch.equal(fx, rx)


def test_augmented_ranks_take_their_share_of_the_global_batch():
    """Under DDP each sample gets the augmentation it would get in one process."""
    x, y, aug = _images(n=40), torch.arange(40), CropFlip(2, 0.5)
    single = list(IndexBatches(x, y, 8, shuffle=True, seed=1, drop_last=True, augment=aug))
    ranks = [list(IndexBatches(x, y, 8, shuffle=True, seed=1, drop_last=True, augment=aug, rank=r, world_size=2)) for r in (0, 1)]
    for b, (sx, sy) in enumerate(single):
        assert torch.equal(ranks[0][b][0], sx[0::2]) and torch.equal(ranks[1][b][0], sx[1::2])
        assert torch.equal(ranks[0][b][1], sy[0::2])


def test_augmentation_is_for_training_batches_only():
    with pytest.raises(ValueError, match="training batches"):
        IndexBatches(_images(), torch.arange(12), 4, augment=CropFlip())


def test_data_module_augments_training_batches_with_black_borders(tmp_path):
    """CIFAR-10 files with augment: training batches change, evaluation batches do not, and
    the padded border is black in the standardized scale (-mean / std per channel)."""
    write_cifar10(tmp_path, per_batch=8, n_test=6)

    def module(augment):
        dm = CIFAR10(root=str(tmp_path), verify_checksums=False, batch_size=8, eval_batch_size=4, augment=augment)
        dm.setup("fit")
        return dm

    plain, augmented = module(None), module(CropFlip(4, 0.0))
    raw = CIFAR10(root=str(tmp_path), verify_checksums=False, normalize=False)
    raw.setup("fit")
    pixels = raw.splits["train"][0]
    black = -pixels.mean(dim=(0, 2, 3)) / pixels.std(dim=(0, 2, 3))
    assert augmented.fill.shape == (3,) and torch.allclose(augmented.fill, black, atol=1e-5)
    (px, py), (ax, ay) = next(iter(plain.train_dataloader())), next(iter(augmented.train_dataloader()))
    assert torch.equal(py, ay) and not torch.equal(px, ax)  # same samples, moved
    for split in ("val_dataloader", "test_dataloader"):
        for (p, _), (a, _) in zip(getattr(plain, split)(), getattr(augmented, split)()):
            assert torch.equal(p, a)


def test_augment_on_non_image_data_is_refused_clearly():
    from labbench.data.embedded import MNIST1D

    dm = MNIST1D(num_samples=200, augment=CropFlip(2, 0.0))
    with pytest.raises(ValueError, match=r"transforms images .* data=digits, mnist5k, mnist or cifar10"):
        dm.setup("fit")


def test_run_with_augmentation_is_reproducible_and_differs_from_without(tmp_path):
    from labbench.config import compose
    from labbench.train import run

    base = ["data=digits", "trainer.max_steps=20", "trainer.val_check_interval=20", "logger=csv",
            "trainer.enable_progress_bar=false", "seed=3"]
    first = run(compose([*base, "augment=crop"]), tmp_path / "a")
    again = run(compose([*base, "augment=crop"]), tmp_path / "b")
    plain = run(compose(base), tmp_path / "c")
    assert first["status"] == "completed" and first["config"]["augment"]["padding"] == 2
    assert first["curves"] == again["curves"] and first["metrics"] == again["metrics"]
    assert first["curves"]["train/loss"] != plain["curves"]["train/loss"]


def test_augment_with_text_data_is_refused_clearly(tmp_path):
    from labbench.config import compose
    from labbench.train import build

    with pytest.raises(ValueError, match="CharText takes no augmentation.*data=digits, mnist5k, mnist, cifar10"):
        build(compose(["preset=char_lm", "augment=crop"]))


def test_text_windows_of_a_pass_drawn_at_once_are_those_drawn_batch_by_batch():
    """The pass's window starts come in one draw (one move to the device): the same windows
    as one draw per batch from the same generator."""
    ids = torch.arange(3000) % 61
    loader = RandomWindows(ids, context=16, batch_size=8, batches_per_pass=5, seed=2)
    generator = torch.Generator().manual_seed(2 * 1_000_003)
    for x, y in loader:
        starts = torch.randint(0, len(ids) - 17 + 1, (8,), generator=generator)
        window = ids[starts[:, None] + torch.arange(17)]
        assert torch.equal(x, window[:, :-1]) and torch.equal(y, window[:, 1:])


def test_splits_stay_where_they_are_on_the_cpu():
    dm = Digits()
    dm.setup("fit")
    assert dm.placed("train")[0] is dm.splits["train"][0]  # no copy on the CPU


@pytest.mark.gpu
def test_on_device_batches_live_on_the_gpu_and_equal_the_cpu_batches():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x, y, aug = _images(n=64), torch.arange(64), CropFlip(4, 0.5)
    fill = torch.tensor([0.1, 0.2, 0.3])
    cpu = list(IndexBatches(x, y, 16, shuffle=True, seed=5, drop_last=True, augment=aug, fill=fill))
    gpu = list(IndexBatches(x.cuda(), y.cuda(), 16, shuffle=True, seed=5, drop_last=True, augment=aug, fill=fill))
    for (cx, cy), (gx, gy) in zip(cpu, gpu):
        assert gx.is_cuda and gy.is_cuda
        assert torch.equal(cx, gx.cpu()) and torch.equal(cy, gy.cpu())
