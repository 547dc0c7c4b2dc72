"""`python -m tinygrad_cnn.viz`: draw SimpleConvNet's graph (see `cli.main`)."""
from .cli import main

main()
