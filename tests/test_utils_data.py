"""utils.data: Dataset, TensorDataset, samplers, default_collate and DataLoader against torch.utils.data."""
from collections import namedtuple

import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, manual_seed
from tinygrad_cnn.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                                     TensorDataset, default_collate, random_split)


class Squares(Dataset):
    """A map-style dataset of (float32 array, int, float, str) samples."""

    def __init__(self, n=7):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((2, 3), i, np.float32), i * i, i / 2, f"s{i}"


def test_pytorch_defaults_and_attributes():
    ds = Squares()
    loader = DataLoader(ds)
    assert loader.dataset is ds and loader.batch_size == 1 and not loader.drop_last and len(loader) == 7
    assert isinstance(loader.sampler, SequentialSampler) and loader.num_workers == 0
    x, sq, half, names = next(iter(loader))
    assert x.shape == (1, 2, 3) and x.dtype == np.float32 and names == ("s0",)
    assert sq.dtype == np.int64 and half.dtype == np.float64  # Python ints and floats as torch collates them


@needs_torch
def test_batches_match_torchs_default_collate():
    ours = list(DataLoader(Squares(), batch_size=3))
    theirs = list(torch.utils.data.DataLoader(Squares(), batch_size=3))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        assert type(a) is type(b) is list
        for u, v in zip(a, b):
            if isinstance(v, tuple):  # the strings
                assert u == v
            else:
                np.testing.assert_array_equal(u.data, v.numpy())
                assert u.dtype == v.numpy().dtype


def test_default_collate_containers():
    Point = namedtuple("Point", "x y")
    batch = default_collate([{"a": Point(1, 2.0), "b": Tensor(np.ones(2))},
                             {"a": Point(3, 4.0), "b": Tensor(np.zeros(2))}])
    assert isinstance(batch["a"], Point) and batch["a"].x.tolist() == [1, 3] and batch["b"].shape == (2, 2)
    assert default_collate([np.uint8(3), np.uint8(4)]).dtype == np.uint8  # numpy scalars keep their dtype
    assert default_collate([True, False]).dtype == bool
    with pytest.raises(ValueError, match=r"tensor 1 of the batch has shape \(3,\) but tensor 0 has \(2,\)"):
        default_collate([Tensor(np.ones(2)), Tensor(np.ones(3))])
    with pytest.raises(ValueError, match="same number of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_shuffle_is_a_new_order_each_epoch_and_reproducible():
    ds = TensorDataset(np.arange(20), np.arange(20) * 10)
    loader = DataLoader(ds, batch_size=6, shuffle=True, generator=np.random.default_rng(0))
    e1, e2 = ([b[0].tolist() for b in loader] for _ in range(2))
    assert [len(b) for b in e1] == [6, 6, 6, 2] and sorted(sum(e1, [])) == list(range(20)) and e1 != e2
    manual_seed(3)
    a = [b[0].tolist() for b in DataLoader(ds, batch_size=6, shuffle=True)]
    manual_seed(3)
    assert a == [b[0].tolist() for b in DataLoader(ds, batch_size=6, shuffle=True)]
    for x, y in DataLoader(ds, batch_size=6, shuffle=True, drop_last=True):
        assert x.shape == (6,) and (y.data == x.data * 10).all()
    assert len(DataLoader(ds, batch_size=6, drop_last=True)) == 3


def test_batches_are_copies_the_caller_may_modify():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    for loader in (DataLoader(TensorDataset(x), batch_size=4), DataLoader(x, np.arange(6), batch_size=4),
                   DataLoader(Subset(TensorDataset(x), [0, 1, 2]), batch_size=2)):
        for batch in loader:
            batch[0].data[...] = -1
    np.testing.assert_array_equal(x, np.arange(12, dtype=np.float32).reshape(6, 2))


def test_the_lecture_array_form_keeps_working():
    x, t = np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10)
    a = [b[1].tolist() for b in DataLoader(x, t, 3, shuffle=True, seed=4)]
    order = np.random.default_rng(4).permutation(10)  # what the lecture's DataLoader did with seed 4
    assert a == [order[i:i + 3].tolist() for i in range(0, 10, 3)]
    assert isinstance(DataLoader(x, t).dataset, TensorDataset) and len(DataLoader(x, t)) == 10  # torch's defaults
    with pytest.raises(ValueError, match="x has 10 samples but t has 9"):
        DataLoader(x, t[:9], 2)


def test_samplers_and_batch_sampler():
    ds = TensorDataset(np.arange(10))
    assert list(SequentialSampler(ds)) == list(range(10))
    r = RandomSampler(ds, replacement=True, num_samples=25, generator=1)
    assert len(r) == 25 and len(list(r)) == 25 and set(r) <= set(range(10))
    bs = BatchSampler(SequentialSampler(ds), 4, drop_last=False)
    assert list(bs) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(bs) == 3
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]  # any iterable of indices
    loader = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 5, False))
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]] and loader.batch_size is None
    picked = DataLoader(ds, sampler=[9, 0, 3], batch_size=2)
    assert [b[0].tolist() for b in picked] == [[9, 0], [3]]
    singles = list(DataLoader(TensorDataset(np.arange(3.0)), batch_size=None))
    assert len(singles) == 3 and singles[2][0].shape == ()


def test_custom_collate_fn_and_subset_and_random_split():
    ds = Squares(10)
    loader = DataLoader(ds, batch_size=4, collate_fn=lambda items: [i[1] for i in items])
    assert list(loader) == [[0, 1, 4, 9], [16, 25, 36, 49], [64, 81]]
    parts = random_split(ds, [0.7, 0.3], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [7, 3]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    assert parts[1][0][1] == parts[1].indices[0] ** 2
    assert [len(p) for p in random_split(ds, [5, 5])] == [5, 5]
    with pytest.raises(ValueError, match="adding up"):
        random_split(ds, [5, 6])


def test_argument_errors_as_torch():
    ds = TensorDataset(np.arange(4))
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0, 1]])
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(TypeError, match="generator must be"):
        DataLoader(ds, shuffle=True, generator="seed")
    with pytest.raises(ValueError, match="size mismatch between tensors: tensor 1 has 3 samples"):
        TensorDataset(np.arange(4), np.arange(3))
    with pytest.raises(NotImplementedError):
        Dataset()[0]


def test_workers_and_pin_memory_are_accepted_and_load_in_process():
    ds = TensorDataset(np.arange(6.0))
    loader = DataLoader(ds, batch_size=2, num_workers=2, pin_memory=True, persistent_workers=True)
    assert [b[0].tolist() for b in loader] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


def test_reachable_as_torch_utils_data():
    assert tg.utils.data.DataLoader is DataLoader and tg.data.DataLoader is DataLoader
