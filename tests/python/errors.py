"""Bad input from Python raises an exception carrying the library's
message (no crash); no copy of a float32 input; 10,000 calls do not grow
the process's memory, and a leak of one tensor a call would be seen."""
import tracemalloc

import numpy as np
import torch

import longnet
import longnet.torch as lt
from longnet import _lib
from pyref import Checks

c = Checks()
rng = np.random.default_rng(17)
q = rng.standard_normal((1, 64, 2, 8), dtype=np.float32)
LV = dict(segments=[16, 64], dilations=[1, 4])


def raises(what, call, exc, *words):
    try:
        call()
    except exc as e:
        msg = str(e)
        c.true(what, all(w in msg for w in words), "%s: %s" % (type(e).__name__, msg))
        return
    except Exception as e:  # noqa: BLE001 - the wrong kind is a failure, shown
        c.true(what, False, "raised %s: %s, expected %s" % (type(e).__name__, e, exc.__name__))
        return
    c.true(what, False, "nothing raised")


da = longnet.dilated_attention
raises("wrong dtype (complex array)", lambda: da(q.astype(np.complex64), q, q, **LV), TypeError,
       "complex64")
raises("float16 with float32 (library message)", lambda: da(q.astype(np.float16), q, q, **LV),
       longnet.InvalidArgumentError, "float16", "float32")
raises("wrong rank", lambda: da(q[0], q, q, **LV), longnet.InvalidArgumentError,
       "need 4 dimensions")
raises("non-matching shapes", lambda: da(q, q[:, :, :1], q, **LV), longnet.InvalidArgumentError,
       "[1, 64, 1, 8]")
raises("dilation above its segment", lambda: da(q, q, q, [16, 32], [1, 40]),
       longnet.InvalidArgumentError, "dilation 40")
raises("no level with dilation 1", lambda: da(q, q, q, [16], [2]), longnet.InvalidArgumentError,
       "dilation")
raises("segments and dilations of other lengths", lambda: da(q, q, q, [16, 32], [1]),
       ValueError, "2 segments, 1 dilations")
raises("a level that is not a number", lambda: da(q, q, q, "16,x", "1,2"), ValueError, "'x'")
raises("bad offsets", lambda: da(q, q, q, offsets="diagonal", **LV),
       longnet.InvalidArgumentError, "diagonal")
raises("bad scale", lambda: da(q, q, q, scale=-1.0, **LV), longnet.InvalidArgumentError, "-1")
raises("unknown device", lambda: da(q, q, q, device="tpu:3", **LV), longnet.DeviceError, "tpu")
raises("unknown device index", lambda: da(q, q, q, device="cpu:7", **LV), longnet.DeviceError,
       "cpu:7")
raises("bad device list", lambda: da(q, q, q, device="cpu,", **LV), longnet.LongnetError, "")
raises("backward: out without lse",
       lambda: longnet.dilated_attention_backward(q, q, q, q, out=q, **LV), ValueError, "lse")
t = torch.from_numpy(q)
raises("torch: float64 tensor", lambda: lt.dilated_attention(t.double(), t, t, **LV), TypeError,
       "float64")
raises("torch: wrong rank", lambda: lt.dilated_attention(t[0], t, t, **LV),
       longnet.InvalidArgumentError, "need 4 dimensions")
raises("torch: not a tensor", lambda: lt.dilated_attention(q, t, t, **LV), TypeError, "ndarray")
raises("module: bad levels at construction",
       lambda: lt.MultiheadDilatedAttention(16, 2, [16, 32], [1, 64]),
       longnet.InvalidArgumentError, "dilation 64")
raises("module: embed_dim not a multiple of heads",
       lambda: lt.MultiheadDilatedAttention(10, 3, [16], [1]), ValueError, "multiple")
try:
    da(q, q, q, [16], [2])
    status = None
except longnet.LongnetError as e:
    status = (e.status, e.status_name)
c.true("the exception carries the status", status == (-1, "LNET_ERR_INVALID"), str(status))
c.true("the process survived every bad call", True)

# No copy of a float32 input, C-ordered or strided: the call allocates its
# outputs (out, lse) and nothing near the inputs' size. tracemalloc sees
# NumPy's buffers. A reversed (negative-stride) input is copied, and seen.
big = rng.standard_normal((1, 4096, 4, 32), dtype=np.float32)  # 2 MiB
strided = np.ascontiguousarray(big.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)


def peak_of(call):
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


levels = dict(segments=[256, 4096], dilations=[1, 16])
outputs = big.nbytes + 4 * 4 * 4096
for what, a in (("C-ordered", big), ("strided", strided)):
    peak = peak_of(lambda: da(a, a, a, **levels))
    c.true("no copy of a %s float32 input" % what, peak < outputs + big.nbytes // 2,
           "peak %d bytes, outputs %d, input %d" % (peak, outputs, big.nbytes))
peak = peak_of(lambda: da(big[:, ::-1], big, big, **levels))
c.true("the check sees a copy (a reversed input)", peak >= outputs + big.nbytes,
       "peak %d bytes" % peak)


# 10,000 calls: the resident set stays where it was after a warm-up. The
# same loop, 2,000 calls, with lnet_tensor_free made a no-op (every view a
# call makes leaked) must be seen growing.
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


small = rng.standard_normal((1, 16, 1, 8), dtype=np.float32)
ts = torch.from_numpy(small).requires_grad_()


def calls(n):
    for _ in range(n):
        out, lse = da(small, small, small, [8, 16], [1, 2], return_lse=True)
        longnet.dilated_attention_backward(small, small, small, out, [8, 16], [1, 2], out=out,
                                           lse=lse)


def torch_calls(n):
    for _ in range(n):
        lt.dilated_attention(ts, ts, ts, [8, 16], [1, 2]).sum().backward()


def growth(loop, n):
    loop(500)
    before = rss_kib()
    loop(n)
    return rss_kib() - before


LIMIT_KIB = 1024
g = growth(calls, 10000)
c.true("10,000 numpy forward+backward calls do not grow RSS", g < LIMIT_KIB, "%+d KiB" % g)
g = growth(torch_calls, 10000)
c.true("10,000 torch forward+backward calls do not grow RSS", g < LIMIT_KIB, "%+d KiB" % g)
free = _lib.lib.lnet_tensor_free
_lib.lib.lnet_tensor_free = lambda t: None
try:
    g = growth(calls, 2000)
finally:
    _lib.lib.lnet_tensor_free = free
c.true("a leak of the tensor views would be seen", g >= LIMIT_KIB, "%+d KiB" % g)
c.finish()
