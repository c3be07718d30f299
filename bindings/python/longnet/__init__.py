"""longnet — LongNet's dilated attention (liblongnet) from Python.

    import longnet
    out = longnet.dilated_attention(q, k, v, segments=[2048, 4096], dilations=[1, 2])

NumPy arrays here; PyTorch (autograd, a MultiheadAttention-shaped module)
in longnet.torch. The library is found through LONGNET_LIBRARY, the libdir
`make install` recorded, or the system's library search.
"""
from ._lib import (LongnetError, InvalidArgumentError, DeviceError, UnsupportedError,  # noqa: F401
                   info)
from ._numpy import dilated_attention, dilated_attention_backward  # noqa: F401
from . import _lib

__version__ = _lib.lib.lnet_version().decode()
library_path = _lib.lib._name

__all__ = ["dilated_attention", "dilated_attention_backward", "info", "LongnetError",
           "InvalidArgumentError", "DeviceError", "UnsupportedError", "__version__"]
