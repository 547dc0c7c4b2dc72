"""`tinygrad_cnn.utils.data`, as `torch.utils.data`: Dataset, TensorDataset, Subset, random_split,
samplers, default_collate and DataLoader.

Batches are always new arrays (copies), never views of the dataset: they are the
caller's to modify. Datasets that can gather many samples at once (TensorDataset, and
`datasets.MNIST` without transforms) are batched by one fancy-indexing per tensor
instead of sample by sample, when the default collate_fn is used.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..ops import as_tensor
from ..rng import get_rng
from ..tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "BatchSampler", "default_collate", "default_convert", "DataLoader"]


# ----------------------------------------------------------------------------- datasets


class Dataset:
    """A map-style dataset: subclasses define `__getitem__(index)` (one sample) and `__len__`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")


class TensorDataset(Dataset):
    """Samples are tuples (t[i] for t in tensors); every tensor (Tensor or array, shared, not
    copied) has the same first dimension N."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(as_tensor(t) for t in tensors)
        for i, t in enumerate(self.tensors):
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {i} is 0-d; each tensor needs a first (sample) dimension")
            if len(t) != len(self.tensors[0]):
                raise ValueError(f"TensorDataset: size mismatch between tensors: tensor {i} has {len(t)} samples, "
                                 f"tensor 0 has {len(self.tensors[0])}")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])

    def _fetch_batch(self, indices: np.ndarray) -> list:
        """What default_collate makes of the samples at `indices`: one new Tensor per tensor."""
        return [as_tensor(t.data[indices]) for t in self.tensors]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def _generator(generator) -> np.random.Generator | None:
    """None (the framework's generator, see manual_seed), a numpy Generator, or an int seed."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"generator must be None, a numpy.random.Generator or an int seed, got {type(generator).__name__}")


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split `dataset` at random into Subsets of the given lengths (counts that add up to len(dataset),
    or fractions that add up to 1, the remainder spread one by one from the first)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1) and sum(lengths) != n:
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if any(int(k) != k or k < 0 for k in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be counts adding up to the dataset's {n} samples "
                         "or fractions adding up to 1")
    order = (_generator(generator) or get_rng()).permutation(n)
    bounds = np.cumsum([0] + [int(k) for k in lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


# ----------------------------------------------------------------------------- samplers


class Sampler:
    """Yields dataset indices; subclasses define `__iter__` and `__len__`."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError

    def _order(self) -> np.ndarray | None:
        """This epoch's indices as one array, where the sampler can give them at once."""
        return None


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _order(self):
        return np.arange(len(self.data_source))

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random order each epoch (or, with `replacement`, `num_samples` independent draws),
    from `generator` (a numpy Generator or an int seed) or else the framework's generator."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if num_samples is not None and not replacement:
            raise ValueError("RandomSampler: num_samples is only supported with replacement=True "
                             "(set replacement=True or drop num_samples)")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = generator
        self._rng = _generator(generator)

    @property
    def num_samples(self) -> int:
        """How many indices an epoch yields."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _order(self):
        rng = self._rng or get_rng()
        n = len(self.data_source)
        return rng.integers(0, n, self.num_samples) if self.replacement else rng.permutation(n)

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; the last one shorter unless `drop_last`."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        order = self.sampler._order() if isinstance(self.sampler, Sampler) else None
        if order is not None:
            for b in range(self._count(len(order))):
                yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()
            return
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def _count(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self):
        return self._count(len(self.sampler))


# ----------------------------------------------------------------------------- collate


def _stack(arrays: list, what: str) -> Tensor:
    first = arrays[0]
    for i, a in enumerate(arrays):
        if a.shape != first.shape:
            raise ValueError(f"default_collate: {what} {i} of the batch has shape {a.shape} but {what} 0 has "
                             f"{first.shape}; samples must have equal shapes to be stacked (or pass a collate_fn)")
    if first.dtype.kind not in "biuf":
        raise TypeError(f"default_collate: arrays of dtype {first.dtype} cannot become Tensors")
    return as_tensor(np.stack(arrays))


def default_collate(batch: list):
    """Stack a list of samples into a batch, as PyTorch's: Tensors and arrays -> one Tensor (N, ...),
    Python floats -> float64, ints -> int64, bools -> bool, numpy scalars keep their dtype;
    strings stay as they are (a list, or a tuple inside a sample); dicts, tuples and lists are
    collated field by field (tuples and lists give lists, named tuples stay named tuples)."""
    if not isinstance(batch, Sequence) or not batch:
        raise TypeError(f"default_collate: expected a non-empty list of samples, got {batch!r}")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([as_tensor(e).data for e in batch], "tensor")
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
        return _stack([np.asarray(e) for e in batch], "array")
    if isinstance(elem, bool):
        return as_tensor(np.array(batch, dtype=bool))
    if isinstance(elem, int):
        return as_tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return as_tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise ValueError(f"default_collate: each sample of the batch should have the same number of fields "
                             f"({len(elem)}), got {sorted({len(s) for s in batch})}")
        return [default_collate(s) for s in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain Tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data):
    """One sample as it comes (batch_size=None): arrays become Tensors, containers are converted inside."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return as_tensor(data)
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, (list, tuple)):
        return [default_convert(v) for v in data]
    return data


# ----------------------------------------------------------------------------- DataLoader


def _batch_fetcher(dataset):
    """A function from an index array to the collated batch, for datasets that gather many samples
    at once (a `_fetch_batch` method, or a Subset of such a dataset); else None."""
    if isinstance(dataset, Subset):
        inner = _batch_fetcher(dataset.dataset)
        if inner is None:
            return None
        where = np.asarray(dataset.indices, dtype=np.intp)
        return lambda indices: inner(where[indices])
    return getattr(dataset, "_fetch_batch", None)


def _is_lecture_form(args) -> bool:
    """DataLoader(x, t, ...): a second array where PyTorch has batch_size."""
    return bool(args) and isinstance(args[0], (np.ndarray, Tensor, list, tuple))


class DataLoader:
    """Batches from a dataset, as `torch.utils.data.DataLoader` (same arguments and defaults):

        DataLoader(dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                   num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                   worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                   prefetch_factor=None, persistent_workers=False, pin_memory_device="", in_order=True)

    Each epoch (each `iter`) visits the samples once, in order or shuffled (a new order per
    epoch, from `generator` -- a numpy Generator or an int seed -- or else the framework's
    generator, see `manual_seed`). `len()` is the number of batches. batch_size=None yields
    single samples. Loading happens in this process: num_workers, pin_memory and the
    worker options are accepted for PyTorch's signature and change nothing.

    The lecture's form `DataLoader(x, t, batch_size, shuffle=..., drop_last=..., seed=...)`
    takes two arrays of N samples (TensorDataset(x, t)) and yields [x_batch, t_batch].
    """

    def __init__(self, dataset, *args, **kwargs):
        if _is_lecture_form(args):
            t, args = args[0], args[1:]
            x_len, t_len = len(dataset), len(t)
            if x_len != t_len:
                raise ValueError(f"DataLoader: x has {x_len} samples but t has {t_len}")
            dataset = TensorDataset(dataset, t)
            seed = kwargs.pop("seed", None)
            if seed is not None:
                if kwargs.get("generator") is not None:
                    raise ValueError("DataLoader: pass seed or generator, not both")
                kwargs["generator"] = seed
        self._setup(dataset, *args, **kwargs)

    def _setup(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
               collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
               multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
               pin_memory_device="", in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.worker_init_fn, self.multiprocessing_context = worker_init_fn, multiprocessing_context
        self.prefetch_factor, self.persistent_workers = prefetch_factor, persistent_workers
        self.pin_memory_device, self.in_order = pin_memory_device, in_order
        self._default_collate = collate_fn is None
        if collate_fn is None:
            collate_fn = default_collate if batch_sampler is not None else default_convert
        self.collate_fn = collate_fn

    def __len__(self):
        return len(self.batch_sampler) if self.batch_sampler is not None else len(self.sampler)

    def __iter__(self):
        if self.batch_sampler is None:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])
            return
        fetch = _batch_fetcher(self.dataset) if self._default_collate else None
        for indices in self.batch_sampler:
            if fetch is not None:
                yield fetch(np.asarray(indices, dtype=np.intp))
            else:
                yield self.collate_fn([self.dataset[i] for i in indices])
