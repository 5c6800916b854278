"""Data: embedded data sets, deterministic splits, normalization, batching, torchvision formats."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
from helpers_torchvision_files import write_cifar10, write_mnist

from labbench.data import embedded
from labbench.data.base import DatasetNotFoundError, IndexBatches
from labbench.data.embedded import MNIST1D, Digits, MNIST5k, Synthetic
from labbench.data.torchvision_sets import CIFAR10, MNIST

MNIST1D_SAMPLES = 1000  # the package's 80/20 split: 800 train, 200 test (fast to generate)


def _rows(x: torch.Tensor, y: torch.Tensor) -> Counter:
    """Multiset of (input bytes, label) pairs: one entry per sample."""
    flat = x.reshape(len(x), -1).numpy()
    return Counter((row.tobytes(), int(label)) for row, label in zip(flat, y.tolist()))


def _make(cls, **kwargs):
    dm = cls(**kwargs)
    dm.setup()
    return dm


# Raw (un-normalized) copies, built once per module: the partition checks compare rows.
@pytest.fixture(scope="module")
def digits_raw():
    return _make(Digits, normalize=False)


@pytest.fixture(scope="module")
def mnist5k_raw():
    return _make(MNIST5k, normalize=False)


@pytest.fixture(scope="module")
def mnist1d_raw():
    return _make(MNIST1D, num_samples=MNIST1D_SAMPLES, normalize=False)


@pytest.fixture(scope="module")
def synthetic_raw():
    return _make(Synthetic, normalize=False)


# ---------------------------------------------------------------------------------------
# Embedded data sets: sizes and shapes
# ---------------------------------------------------------------------------------------


def test_digits_split_sizes_and_shape(digits_raw):
    """Digits: 1,797 images -> 20% test (359), 10% of the rest val (144), train 1294; (1, 8, 8)."""
    assert digits_raw.split_sizes() == {"train": 1294, "val": 144, "test": 359}
    assert digits_raw.input_shape == (1, 8, 8)
    assert digits_raw.num_classes == 10


def test_mnist5k_split_sizes_and_shape(mnist5k_raw):
    """MNIST5k: 5,000 images -> test 1000, val 400, train 3600; (1, 28, 28)."""
    assert mnist5k_raw.split_sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert mnist5k_raw.input_shape == (1, 28, 28)


def test_mnist1d_split_sizes_and_shape(mnist1d_raw):
    """MNIST-1D: the package's 80/20 split of num_samples, val 10% of train; (1, 40)."""
    assert mnist1d_raw.split_sizes() == {"train": 720, "val": 80, "test": 200}
    assert mnist1d_raw.input_shape == (1, 40)


def test_synthetic_split_sizes_and_shape(synthetic_raw):
    """Synthetic (512 samples, 16 features): test 128, val 38, train 346; (1, 16)."""
    assert synthetic_raw.split_sizes() == {"train": 346, "val": 38, "test": 128}
    assert synthetic_raw.input_shape == (1, 16)
    assert set(synthetic_raw.splits["train"][1].tolist()) == set(range(synthetic_raw.num_classes))


# ---------------------------------------------------------------------------------------
# Splits: a partition, fixed by split_seed alone
# ---------------------------------------------------------------------------------------


def _full_data(name: str, dm) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "digits":
        x, y = embedded._digits_arrays()
        return torch.from_numpy(x).reshape(-1, 1, 8, 8), torch.from_numpy(y)
    if name == "mnist5k":
        x, y = embedded._mnist5k_arrays()
        return torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y)
    x, y, xt, yt = embedded._mnist1d_arrays(MNIST1D_SAMPLES, dm.generation_seed)
    return torch.from_numpy(np.concatenate([x, xt])).unsqueeze(1), torch.from_numpy(np.concatenate([y, yt]))


@pytest.mark.parametrize("name", ["digits", "mnist5k", "mnist1d"])
def test_train_val_test_partition_the_data_set(name, request):
    """Every sample lands in exactly one of train / val / test (multiset of rows is preserved)."""
    dm = request.getfixturevalue(f"{name}_raw")
    parts = sum((_rows(*dm.splits[k]) for k in ("train", "val", "test")), Counter())
    assert parts == _rows(*_full_data(name, dm))


@pytest.mark.parametrize("name", ["mnist1d", "synthetic"])
def test_no_val_or_test_sample_is_in_train(name, request):
    """On data with unique rows, val and test share no sample with train."""
    dm = request.getfixturevalue(f"{name}_raw")
    train = set(_rows(*dm.splits["train"]))
    assert len(train) == len(dm.splits["train"][1])  # rows are unique, so the check is meaningful
    assert not train & set(_rows(*dm.splits["val"]))
    assert not train & set(_rows(*dm.splits["test"]))


def test_split_depends_on_split_seed_not_order_seed():
    """Same split_seed -> identical splits whatever the order_seed; another split_seed -> different."""
    a = _make(Digits, split_seed=3, order_seed=0)
    b = _make(Digits, split_seed=3, order_seed=99)
    c = _make(Digits, split_seed=4, order_seed=0)
    for k in ("train", "val", "test"):
        assert torch.equal(a.splits[k][0], b.splits[k][0]) and torch.equal(a.splits[k][1], b.splits[k][1])
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])
    assert not torch.equal(a.splits["test"][0], c.splits["test"][0])


def test_mnist1d_split_depends_on_split_seed():
    """MNIST-1D's val split follows split_seed too."""
    a = _make(MNIST1D, num_samples=MNIST1D_SAMPLES, split_seed=0, order_seed=1, normalize=False)
    b = _make(MNIST1D, num_samples=MNIST1D_SAMPLES, split_seed=0, order_seed=2, normalize=False)
    c = _make(MNIST1D, num_samples=MNIST1D_SAMPLES, split_seed=1, normalize=False)
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])


# ---------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,kwargs", [(Digits, {}), (MNIST1D, {"num_samples": MNIST1D_SAMPLES}), (Synthetic, {})])
def test_train_split_is_standardized_per_channel(cls, kwargs):
    """normalize=True: the train split has mean ~0 and std ~1 per channel."""
    x = _make(cls, **kwargs).splits["train"][0]
    dims = [0] + list(range(2, x.dim()))
    assert torch.allclose(x.mean(dim=dims), torch.zeros(x.shape[1]), atol=1e-4)
    assert torch.allclose(x.std(dim=dims), torch.ones(x.shape[1]), atol=1e-4)


def test_val_and_test_use_the_train_statistics(digits_raw):
    """Val and test are shifted and scaled by the train split's mean and std, not their own."""
    normed = _make(Digits)
    train = digits_raw.splits["train"][0]
    mean, std = train.mean(), train.std()
    for k in ("val", "test"):
        assert torch.allclose(normed.splits[k][0], (digits_raw.splits[k][0] - mean) / std, atol=1e-5)
        assert torch.equal(normed.splits[k][1], digits_raw.splits[k][1])


def test_mnist1d_generation_keeps_the_global_rngs():
    """Generating MNIST-1D leaves NumPy's and Python's global RNG states unchanged."""
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    np_before, py_before = np.random.get_state(), random.getstate()
    args = get_dataset_args()
    args.num_samples = 100
    make_dataset(args)  # the raw generator does reseed them, so the guard matters
    assert not np.array_equal(np.random.get_state()[1], np_before[1])

    np.random.set_state(np_before)
    random.setstate(py_before)
    embedded._mnist1d_arrays.cache_clear()  # force a real generation
    _make(MNIST1D, num_samples=200, generation_seed=5)
    np_after = np.random.get_state()
    assert np_after[0] == np_before[0] and np.array_equal(np_after[1], np_before[1]) and np_after[2:] == np_before[2:]
    assert random.getstate() == py_before


# ---------------------------------------------------------------------------------------
# IndexBatches and the loaders
# ---------------------------------------------------------------------------------------


def _ids(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.arange(n)
    return ids.float().unsqueeze(1), ids


def _order(loader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_train_batches_are_full_and_cover_each_sample_at_most_once():
    """Shuffled with drop_last: len(loader) full batches, no sample repeated within a pass."""
    x, y = _ids(103)
    loader = IndexBatches(x, y, batch_size=10, shuffle=True, seed=0, drop_last=True)
    batches = list(loader)
    assert len(loader) == 10 and len(batches) == 10
    assert all(len(bx) == 10 and len(by) == 10 for bx, by in batches)
    seen = _order(batches)
    assert len(set(seen)) == 100 and set(seen) <= set(range(103))
    assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in batches)  # inputs stay with labels


def test_without_drop_last_the_last_batch_is_partial():
    """drop_last=False: ceil(n / batch_size) batches covering every sample."""
    x, y = _ids(103)
    loader = IndexBatches(x, y, batch_size=10)
    assert len(loader) == 11 and len(list(loader)[-1][1]) == 3
    assert _order(loader) == list(range(103))


def test_each_pass_draws_a_new_order():
    """The second pass over a shuffled loader differs from the first."""
    loader = IndexBatches(*_ids(100), batch_size=10, shuffle=True, seed=0, drop_last=True)
    first, second = _order(loader), _order(loader)
    assert first != second
    assert sorted(first) == sorted(second) == list(range(100))
    assert first != list(range(100))


def test_train_order_depends_on_order_seed_only():
    """Same order_seed -> same batch order in two fresh data modules; another seed -> another order."""

    def order(order_seed: int) -> list[list[int]]:
        dm = _make(Synthetic, order_seed=order_seed, batch_size=32)
        loader = dm.train_dataloader()
        return [_order(loader) for _ in range(2)]  # two passes

    seed0, seed0_again, seed1 = order(0), order(0), order(1)
    assert seed0 == seed0_again
    assert seed1[0] != seed0[0] and seed1[1] != seed0[1]


def test_train_loader_yields_data_of_the_train_split():
    """The train loader serves batch_size rows of the train split (and only those)."""
    dm = _make(Synthetic, batch_size=32)
    loader = dm.train_dataloader()
    assert len(loader) == 346 // 32
    train_rows = set(_rows(*dm.splits["train"]))
    batches = list(loader)
    assert all(len(by) == 32 for _, by in batches)
    served = _rows(torch.cat([bx for bx, _ in batches]), torch.cat([by for _, by in batches]))
    assert set(served) <= train_rows and max(served.values()) == 1


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_loaders_are_unshuffled_and_complete(split):
    """Val / test loaders serve every sample exactly once, in split order, on every pass."""
    dm = _make(Synthetic, eval_batch_size=50)
    loader = getattr(dm, f"{split}_dataloader")()
    x, y = dm.splits[split]
    for _ in range(2):
        batches = list(loader)
        assert torch.equal(torch.cat([bx for bx, _ in batches]), x)
        assert torch.equal(torch.cat([by for _, by in batches]), y)


def test_batch_larger_than_train_set_raises():
    """batch_size > number of training samples with drop_last would yield nothing: ValueError."""
    dm = _make(Synthetic, batch_size=1000)
    with pytest.raises(ValueError, match="larger than the 346 training samples"):
        dm.train_dataloader()


def test_non_positive_batch_size_raises():
    """batch_size <= 0 is rejected."""
    with pytest.raises(ValueError, match="batch_size"):
        IndexBatches(*_ids(10), batch_size=0)


# ---------------------------------------------------------------------------------------
# MNIST and CIFAR-10 through torchvision's on-disk formats
# ---------------------------------------------------------------------------------------


def test_mnist_reads_torchvision_idx_files(tmp_path):
    """Tiny idx files: train+val = 40, test = 20, (1, 28, 28), labels and pixels kept (scaled to [0, 1])."""
    written = write_mnist(tmp_path, n_train=40, n_test=20)
    dm = _make(MNIST, root=str(tmp_path), download=False, normalize=False, val_fraction=0.25)
    assert dm.split_sizes() == {"train": 30, "val": 10, "test": 20}
    assert dm.input_shape == (1, 28, 28)
    train_y = torch.cat([dm.splits["train"][1], dm.splits["val"][1]])
    assert Counter(train_y.tolist()) == Counter(written["train"][1].tolist())
    # test split is unshuffled: images and labels exactly as written
    images, labels = written["test"]
    assert torch.allclose(dm.splits["test"][0], torch.from_numpy(images).float().unsqueeze(1) / 255)
    assert dm.splits["test"][1].tolist() == labels.tolist()
    # each train image keeps its label: pixel value 3*i, label i % 10
    for x, y in zip(*dm.splits["train"]):
        i = round(x[0, 0, 0].item() * 255 / 3)
        assert y.item() == i % 10


def test_cifar10_reads_torchvision_pickles(tmp_path):
    """Tiny pickles: 5 x 4 train, 6 test, (3, 32, 32) channels-first with pixels in place."""
    written = write_cifar10(tmp_path, per_batch=4, n_test=6)
    dm = _make(CIFAR10, root=str(tmp_path), download=False, verify_checksums=False, normalize=False,
               val_fraction=0.2)
    assert dm.split_sizes() == {"train": 16, "val": 4, "test": 6}
    assert dm.input_shape == (3, 32, 32)
    test_x, test_y = written["test"]
    expected = torch.from_numpy(test_x).reshape(-1, 3, 32, 32).float() / 255
    assert torch.allclose(dm.splits["test"][0], expected)
    assert dm.splits["test"][1].tolist() == test_y
    train_x, train_y = written["train"]
    loaded = torch.cat([dm.splits["train"][0], dm.splits["val"][0]])
    loaded_y = torch.cat([dm.splits["train"][1], dm.splits["val"][1]])
    assert _rows((loaded * 255).round().to(torch.uint8), loaded_y) == _rows(
        torch.from_numpy(train_x).reshape(-1, 3, 32, 32), torch.tensor(train_y)
    )


def test_cifar10_is_standardized_per_channel(tmp_path):
    """normalize=True standardizes each of the 3 channels on the train split."""
    write_cifar10(tmp_path)
    x = _make(CIFAR10, root=str(tmp_path), verify_checksums=False).splits["train"][0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)


def test_cifar10_checksums_reject_non_genuine_files(tmp_path):
    """verify_checksums=True (the default) rejects the tiny files with DatasetNotFoundError."""
    write_cifar10(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        _make(CIFAR10, root=str(tmp_path), download=False)


@pytest.mark.parametrize(
    "cls,kwargs,subdir",
    [
        (MNIST, {}, ("MNIST", "raw")),
        (CIFAR10, {}, ("cifar-10-batches-py",)),
        (CIFAR10, {"verify_checksums": False}, ("cifar-10-batches-py",)),
    ],
)
def test_missing_files_name_the_path_and_how_to_download(tmp_path, cls, kwargs, subdir):
    """An empty root gives DatasetNotFoundError naming the expected folder and download=true."""
    with pytest.raises(DatasetNotFoundError) as err:
        _make(cls, root=str(tmp_path), download=False, **kwargs)
    message = str(err.value)
    assert str(tmp_path.joinpath(*subdir)) in message
    assert "download=true" in message
    assert isinstance(err.value, FileNotFoundError)


# -- data parallelism: every rank's share, without processes ---------------------------------


def test_ranks_split_each_global_batch_like_one_process():
    x = torch.arange(64).float().unsqueeze(1)
    y = torch.arange(64)
    single = list(IndexBatches(x, y, 16, shuffle=True, seed=3, drop_last=True))
    shards = [list(IndexBatches(x, y, 16, shuffle=True, seed=3, drop_last=True, rank=r, world_size=2)) for r in (0, 1)]
    assert all(len(s) == len(single) for s in shards)
    for b, (xb, yb) in enumerate(single):
        assert torch.equal(shards[0][b][1], yb[0::2]) and torch.equal(shards[1][b][1], yb[1::2])  # the global batch, split
    with pytest.raises(ValueError, match="global batch of all 3 processes and must be divisible"):
        IndexBatches(x, y, 16, drop_last=True, rank=0, world_size=3)


@pytest.mark.parametrize("n,world", [(359, 2), (359, 3), (10, 4), (144, 8)])
def test_evaluation_sees_every_sample_exactly_once(n, world):
    x, y = torch.zeros(n, 1), torch.arange(n)
    seen = [int(i) for r in range(world) for _, yb in IndexBatches(x, y, 32, rank=r, world_size=world) for i in yb]
    assert sorted(seen) == list(range(n))  # no padding, no drop, no repeat


def test_text_windows_shard_the_same_way():
    from labbench.data.text import FixedWindows, RandomWindows

    ids = torch.arange(5000) % 97
    single = next(iter(RandomWindows(ids, 16, 8, 3, seed=1)))[0]
    halves = [next(iter(RandomWindows(ids, 16, 8, 3, seed=1, rank=r, world_size=2)))[0] for r in (0, 1)]
    assert torch.equal(halves[0], single[0::2]) and torch.equal(halves[1], single[1::2])
    windows = [FixedWindows(ids, 16, 4, 25, rank=r, world_size=3).x for r in range(3)]
    assert torch.equal(torch.cat(windows), FixedWindows(ids, 16, 4, 25).x)
