"""pyref — what the Python tests share: a pure-PyTorch float64 version of
the operator (written from doc/ARCHITECTURE.md's definition, not from the
C code), the golden cases' reader, and the comparison every test uses."""
import math
import os

import numpy as np
import torch


def reference_attention(q, k, v, segments, dilations, causal=False, offsets="interleaved",
                        scale=None):
    """Dilated attention by its definition, differentiable by autograd, in
    q's dtype. [B, N, H, D] in, (out [B, N, H, D], lse [B, H, N]) out.
    Per level (w, r): segments [s*w, min((s+1)*w, N)); head h's offset
    o = h mod r (interleaved) or h // ceil(H / r) (grouped); rows
    s*w + o + j*r attend each other (keys <= query when causal); the
    levels are mixed by their log-sum-exps."""
    B, N, H, D = q.shape
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    outs, lses = [], []
    for w, r in zip(segments, dilations):
        heads_o, heads_l = [], []
        for h in range(H):
            o = h % r if offsets == "interleaved" else h // math.ceil(H / r)
            out_h = q.new_zeros(B, N, D)
            lse_h = q.new_full((B, N), -math.inf)
            for start in range(0, N, w):
                idx = torch.arange(start + o, min(start + w, N), r)
                if len(idx) == 0:
                    continue
                qs, ks, vs = q[:, idx, h], k[:, idx, h], v[:, idx, h]
                s = scale * qs @ ks.transpose(1, 2)
                if causal:
                    s = s.masked_fill(idx[None, :] > idx[:, None], -math.inf)
                lse_s = torch.logsumexp(s, -1)
                out_h = out_h.index_copy(1, idx, torch.softmax(s, -1) @ vs)
                lse_h = lse_h.index_copy(1, idx, lse_s)
            heads_o.append(out_h)
            heads_l.append(lse_h)
        outs.append(torch.stack(heads_o, 2))
        lses.append(torch.stack(heads_l, 1))  # [B, H, N]
    lse = torch.logsumexp(torch.stack(lses), 0)
    out = sum(torch.exp(li - lse).transpose(1, 2).unsqueeze(-1) * oi
              for oi, li in zip(outs, lses))
    return out, lse


def golden_cases():
    """(name, config dict, folder) for each line of cases.tsv."""
    root = os.environ["LONGNET_GOLDEN_DIR"]
    with open(os.path.join(root, "cases.tsv")) as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    head, rows = lines[0], lines[1:]
    for row in rows:
        c = dict(zip(head, row))
        cfg = {"segments": [int(x) for x in c["segments"].split(",")],
               "dilations": [int(x) for x in c["dilations"].split(",")],
               "causal": c["causal"] == "1", "offsets": c["offsets"],
               "scale": float(c["scale"]) or None}
        yield c["name"], cfg, os.path.join(root, c["name"])


def load(folder, name):
    return np.load(os.path.join(folder, name + ".npy"))


def max_error(got, want):
    got = got.detach().double().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    want = want.detach().double().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError("shape %s, expected %s" % (got.shape, want.shape))
    return float(np.max(np.abs(got.astype(np.float64) - want)))


class Checks:
    """Counts failures; each check prints one line, as the C tests do."""

    def __init__(self):
        self.failed = 0

    def close(self, what, got, want, tol):
        err = max_error(got, want)
        ok = err <= tol
        self.failed += not ok
        print("%s %s: max error %.3g (tolerance %.0e)" % ("ok  " if ok else "FAIL", what, err, tol))
        return ok

    def true(self, what, cond, detail=""):
        self.failed += not cond
        print("%s %s%s" % ("ok  " if cond else "FAIL", what, (": " + detail) if detail else ""))
        return cond

    def finish(self):
        print("%d check(s) failed" % self.failed if self.failed else "all checks passed")
        raise SystemExit(1 if self.failed else 0)
