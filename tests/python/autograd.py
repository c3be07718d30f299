"""longnet.torch.dilated_attention (float32, liblongnet) against the
float64 pure-PyTorch reference (pyref), forward and gradients by autograd:
causal and not, ragged last segments, both offset modes, strided inputs,
several devices. Each kind of check is shown able to fail."""
import torch

import longnet.torch as lt
from pyref import Checks, reference_attention

TOL = 5e-5  # float32 against float64 for D <= 16, N <= 100 (measured: ~1e-6)
c = Checks()
gen = torch.Generator().manual_seed(17)


def case(B, N, H, D):
    q, k, v, dout = (torch.randn(B, N, H, D, generator=gen) for _ in range(4))
    return q, k, v, dout


def compare(what, q, k, v, dout, cfg, device="cpu", expect_fail=False):
    tq, tk, tv = (x.clone().requires_grad_() for x in (q, k, v))
    out, lse = lt.dilated_attention(tq, tk, tv, return_lse=True, device=device, **cfg)
    out.backward(dout)
    rq, rk, rv = (x.double().requires_grad_() for x in (q, k, v))
    ref_cfg = dict(cfg, **(expect_fail or {}))
    rout, rlse = reference_attention(rq, rk, rv, **ref_cfg)
    rout.backward(dout.double())
    errs = [(n, (a.detach().double() - b.detach()).abs().max().item())
            for n, a, b in (("out", out, rout), ("lse", lse, rlse), ("dq", tq.grad, rq.grad),
                            ("dk", tk.grad, rk.grad), ("dv", tv.grad, rv.grad))]
    worst = max(e for _, e in errs)
    detail = ", ".join("%s %.2g" % e for e in errs)
    if expect_fail:
        c.true("%s: a wrong reference is told apart" % what, worst > TOL, detail)
    else:
        c.true(what, worst <= TOL, detail)


levels = {"segments": [16, 32, 64], "dilations": [1, 2, 4]}
for causal in (False, True):
    for offsets in ("interleaved", "grouped"):
        for N in (64, 100):  # 100: ragged last segment at every level
            cfg = dict(levels, causal=causal, offsets=offsets)
            compare("N=%d H=4 causal=%s %s" % (N, causal, offsets), *case(2, N, 4, 8), cfg)

cfg = dict(levels, causal=True, scale=0.3)
q, k, v, dout = case(1, 100, 3, 16)
compare("scale=0.3", q, k, v, dout, cfg)
# Strided, not C-ordered: [B, H, N, D] storage seen as [B, N, H, D].
qs, ks, vs = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v))
c.true("the strided inputs are views", not qs.is_contiguous())
compare("strided q, k, v (no copy)", qs, ks, vs, dout, cfg)
# One sequence split over two devices (the same device twice, given
# weights, and measured weights).
compare("device cpu=1,cpu=1", q, k, v, dout, cfg, device="cpu=1,cpu=1")
compare("device cpu,cpu (calibrated)", q, k, v, dout, cfg, device="cpu,cpu")

# The comparison is able to fail: the reference with the other offset mode,
# without the causal mask, and with another scale.
compare("offsets", q, k, v, dout, cfg, expect_fail={"offsets": "grouped"})
compare("causal", q, k, v, dout, cfg, expect_fail={"causal": False})
compare("scale", q, k, v, dout, cfg, expect_fail={"scale": 0.31})
c.finish()
