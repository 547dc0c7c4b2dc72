"""The framework's random-number generator (dropout, weight init, shuffling)."""
import numpy as np

_rng = np.random.default_rng()


def get_rng() -> np.random.Generator:
    """The generator that dropout, nn.init and DataLoader draw from unless given a seed."""
    return _rng


def manual_seed(seed: int) -> None:
    """Reseed the framework's generator, for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)
