"""Independent references: nested-loop conv and pooling for tiny shapes (tests only)."""
import numpy as np


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    xp = np.pad(x, [(0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])])
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, oc, oh, ow))
    ocg = oc // groups
    for i in range(n):
        for o in range(oc):
            g = o // ocg
            for y in range(oh):
                for z in range(ow):
                    acc = 0.0
                    for ci in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                acc += w[o, ci, p, q] * xp[i, g * cg + ci, y * stride[0] + p * dilation[0],
                                                          z * stride[1] + q * dilation[1]]
                    out[i, o, y, z] = acc + (0.0 if b is None else b[o])
    return out


def pool2d(x, kernel, stride, padding, reducer, pad_value, ceil_mode=False, dilation=(1, 1)):
    """Generic pooling by loops; `reducer(window_values, window_valid_mask)`."""
    n, c, h, w = x.shape
    out_hw = []
    for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1
        out_hw.append(o)
    out = np.zeros((n, c, *out_hw))
    for i in range(n):
        for ch in range(c):
            for y in range(out_hw[0]):
                for z in range(out_hw[1]):
                    vals, inside, in_pad = [], [], []
                    for p in range(kernel[0]):
                        for q in range(kernel[1]):
                            r = y * stride[0] + p * dilation[0] - padding[0]
                            s_ = z * stride[1] + q * dilation[1] - padding[1]
                            ok = 0 <= r < h and 0 <= s_ < w
                            vals.append(x[i, ch, r, s_] if ok else pad_value)
                            inside.append(ok)
                            in_pad.append(-padding[0] <= r < h + padding[0] and -padding[1] <= s_ < w + padding[1])
                    out[i, ch, y, z] = reducer(np.array(vals), np.array(inside), np.array(in_pad))
    return out


def max_pool2d(x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    return pool2d(x, kernel, stride, padding, lambda v, m, pm: v.max(), -np.inf, ceil_mode, dilation)


def avg_pool2d(x, kernel, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True):
    def mean(v, inside, in_pad):
        return v.sum() / (in_pad.sum() if count_include_pad else inside.sum())
    return pool2d(x, kernel, stride, padding, mean, 0.0, ceil_mode)
