"""numpy kernels behind the CNN ops: arrays in, arrays out, no autograd (`functional`
wraps them in differentiable ops).

- `layout`: memory order, padding, window views, shared by the others;
- `conv`: im2col/col2im (`unfold`, `fold`) and conv2d with its two gradients, a chunk of
  output rows at a time;
- `pooling`: max and average pooling and their gradients.

Windows are strided views of the (padded) input; the Python loops run over kernel
offsets (kh * kw of them) and over chunks of a few MB (conv2d's rows of output, pooling's
channels), never over images or output positions.

Layout: conv2d keeps the batch innermost in memory. Its input is read as (C, H, W, N),
its columns are (C*KH*KW, OH, OW, N) and its output and input gradient are (C, H, W, N)
underneath; their shapes are PyTorch's (N, C, H, W), only the strides differ. Then a
chunk of output rows is one matrix product, each kernel offset's slice of the input is
runs of OW*N contiguous values, and one conv's output is the next conv's input without a
transposing copy. Kernels that make a new array from one such input give it the same
layout (`empty_as`), so the layout carries through ReLU, pooling and their gradients.

The tuning constants (chunk sizes, thread thresholds) live in the submodule that reads
them: set `kernels.conv.CHUNK_BYTES`, not `kernels.CHUNK_BYTES`.
"""
from . import conv, layout, pooling
from .conv import col2im, conv2d, conv2d_input_grad, conv2d_weight_grad, fold, im2col, row_chunks, unfold
from .layout import (batch_last, empty_as, in_order, lowest, memory_order, offset_slices, output_size, pad4, pair,
                     windows)
from .pooling import avg_pool, avg_pool_scatter, max_pool, pool_gather, pool_scatter

__all__ = ["conv", "layout", "pooling", "col2im", "conv2d", "conv2d_input_grad", "conv2d_weight_grad", "fold",
           "im2col", "row_chunks", "unfold", "batch_last", "empty_as", "in_order", "lowest", "memory_order",
           "offset_slices", "output_size", "pad4", "pair", "windows", "avg_pool", "avg_pool_scatter", "max_pool",
           "pool_gather", "pool_scatter"]
