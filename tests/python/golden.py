"""The NumPy and torch entry points against the float64 oracle cases
(tests/golden): out, lse, and dq, dk, dv for the case's dout, within the
1e-4 every backend is held to. A corrupted expectation must be caught."""
import numpy as np
import torch

import longnet
import longnet.torch as lt
from pyref import Checks, golden_cases, load

TOL = 1e-4
c = Checks()
for name, cfg, d in golden_cases():
    q, k, v, dout = (load(d, x) for x in ("q", "k", "v", "dout"))
    out, lse = longnet.dilated_attention(q, k, v, return_lse=True, **cfg)
    c.close("numpy %s out" % name, out, load(d, "out"), TOL)
    c.close("numpy %s lse" % name, lse, load(d, "lse"), TOL)
    grads = longnet.dilated_attention_backward(q, k, v, dout, out=out, lse=lse, **cfg)
    for g, n in zip(grads, ("dq", "dk", "dv")):
        c.close("numpy %s %s" % (name, n), g, load(d, n), TOL)

    tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
    tout, tlse = lt.dilated_attention(tq, tk, tv, return_lse=True, **cfg)
    tout.backward(torch.from_numpy(dout))
    c.close("torch %s out" % name, tout, load(d, "out"), TOL)
    c.close("torch %s lse" % name, tlse, load(d, "lse"), TOL)
    for g, n in zip((tq.grad, tk.grad, tv.grad), ("dq", "dk", "dv")):
        c.close("torch %s %s" % (name, n), g, load(d, n), TOL)

# The comparison is able to fail: one element of an expectation moved by
# 1e-3 is reported.
name, cfg, d = next(iter(golden_cases()))
q, k, v = (load(d, x) for x in ("q", "k", "v"))
wrong = load(d, "out").copy()
wrong[0, 3, 1, 2] += 1e-3
out = longnet.dilated_attention(q, k, v, **cfg)
c.true("a corrupted expectation is caught", np.max(np.abs(out - wrong)) > TOL)
c.finish()
