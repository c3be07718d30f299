"""_numpy — the NumPy entry points: dilated attention forward and backward
on [B, N, H, D] arrays, each array handed to the library as a strided view
of its own memory (no copy for float32, C-ordered or not)."""
import numpy as np

from . import _lib

_NP_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}


def _input(a, name):
    """An input as an array the library can view without a copy: float32
    (and float16, which the library itself accepts or refuses) as given;
    float64 and integers converted to float32 (a copy); negative strides
    copied (the library's strides are >= 0)."""
    a = np.asarray(a)
    if a.dtype not in _NP_DTYPES:
        if a.dtype.kind not in "fiu":
            raise TypeError("longnet: %s has dtype %s; the attention takes float32 arrays"
                            % (name, a.dtype))
        a = a.astype(np.float32)
    if any(s < 0 for s in a.strides) or any(s % a.itemsize for s in a.strides):
        a = np.ascontiguousarray(a)
    return a


def _view(tensors, a):
    return tensors.wrap(a.ctypes.data, _NP_DTYPES[a.dtype], a.shape,
                        [s // a.itemsize for s in a.strides])


def _lse_shape(q):
    # [B, H, Nq] for a [B, Nq, H, D] query; a wrong rank is the library's to report.
    return (q.shape[0], q.shape[2], q.shape[1]) if q.ndim == 4 else (1,)


def dilated_attention(q, k, v, segments, dilations, causal=False, offsets="interleaved",
                      scale=None, device="cpu", return_lse=False, kernel=None,
                      algorithm="auto"):
    """LongNet's dilated attention (doc/ARCHITECTURE.md, The operator).

    q: [B, Nq, H, D], k and v: [B, N, H, D] (Nq <= N: the queries are the
    sequence's last rows). segments, dilations: the levels, as lists of
    ints or "2048,4096" strings. offsets: "interleaved" (the paper) or
    "grouped" (torchscale). scale: None for 1/sqrt(D). device: "cpu",
    "opencl:0" or a list "cpu,opencl:0" (weights "cpu=1,opencl:0=3").
    Returns out [B, Nq, H, D] float32, and with return_lse also the
    log-sum-exp [B, H, Nq]. Raises longnet.LongnetError (a ValueError for
    bad arguments) with the library's message."""
    q, k, v = _input(q, "q"), _input(k, "k"), _input(v, "v")
    out = np.empty(q.shape, dtype=q.dtype)
    lse = np.empty(_lse_shape(q), dtype=np.float32)
    opts = _lib.run_options(device, kernel, algorithm)
    with _lib.Config(segments, dilations, causal, offsets, scale) as cfg, \
            _lib.Tensors() as t:
        _lib.forward(cfg, _view(t, q), _view(t, k), _view(t, v), _view(t, out),
                     _view(t, lse), opts)
    return (out, lse) if return_lse else out


def dilated_attention_backward(q, k, v, dout, segments, dilations, causal=False,
                               offsets="interleaved", scale=None, device="cpu", out=None,
                               lse=None, kernel=None, algorithm="auto"):
    """The gradients (dq, dk, dv) of dilated_attention's output for the
    incoming gradient dout (the shape of out). out and lse are the
    forward's (return_lse=True); without them the forward is run first.
    Other arguments as dilated_attention."""
    if (out is None) != (lse is None):
        raise ValueError("longnet: give both out and lse (the forward's) or neither")
    q, k, v, dout = (_input(q, "q"), _input(k, "k"), _input(v, "v"), _input(dout, "dout"))
    dq, dk, dv = (np.empty(a.shape, dtype=a.dtype) for a in (q, k, v))
    opts = _lib.run_options(device, kernel, algorithm)
    with _lib.Config(segments, dilations, causal, offsets, scale) as cfg, \
            _lib.Tensors() as t:
        o = _view(t, _input(out, "out")) if out is not None else None
        s = _view(t, _input(lse, "lse")) if lse is not None else None
        _lib.backward(cfg, _view(t, q), _view(t, k), _view(t, v), o, s, _view(t, dout),
                      _view(t, dq), _view(t, dk), _view(t, dv), opts)
    return dq, dk, dv
