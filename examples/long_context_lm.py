#!/usr/bin/env python3
"""long_context_lm.py — a small decoder-only Transformer trained on a
long-context retrieval task, its attention either longnet's dilated
attention (longnet.torch.dilated_attention) or dense attention
(torch.nn.functional.scaled_dot_product_attention; on a torch without it,
before 2.0, the same dense causal softmax(QK^T)V in query blocks).

The task, made here: a sequence of random filler tokens hides one "needle"
token (one of 16 values, written `span` times in a row, span = the largest
dilation, so that every head offset holds a copy) somewhere in its first
half; the last 16 positions are a QUERY token, and the model must answer
the needle's value there. Chance is log(16) = 2.77 nats; only attention
reaching thousands of tokens back can do better. Loss is measured on the
answers only.

Prints one line per step (loss, accuracy, tokens/s) for each attention,
and writes OUT/losses.csv and OUT/training.png (loss against step,
tokens/s against step). Both attentions start from the same weights and
see the same batches.

    python3 examples/long_context_lm.py --seq-len 8192 --steps 40
"""
import argparse
import csv
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import longnet.torch as lt

FILLERS, VALUES = 64, 16
QUERY = FILLERS + VALUES
VOCAB = QUERY + 1
ANSWERS = 16  # query positions at the end


def make_batch(batch, n, span, gen):
    x = torch.randint(0, FILLERS, (batch, n), generator=gen)
    y = torch.full((batch, n), -100)
    value = torch.randint(FILLERS, QUERY, (batch,), generator=gen)
    pos = torch.randint(0, n // 2 - span, (batch,), generator=gen)
    for b in range(batch):
        x[b, pos[b]:pos[b] + span] = value[b]
        x[b, n - ANSWERS:] = QUERY
        y[b, n - ANSWERS:] = value[b]
    return x, y


def rotary(x, base=10000.0):
    """Rotary position embedding (RoPE) of [B, N, H, D]: relative positions."""
    _, n, _, d = x.shape
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None, :]  # [N, D/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


def dense_attention(q, k, v, block=256):
    """Causal dense attention of [B, N, H, D]: SDPA where torch has it."""
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, N, D]
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).transpose(1, 2)
    scale = 1.0 / math.sqrt(q.shape[-1])

    def rows(qb, kb, vb):  # one block of queries against every key up to its last
        start = kb.shape[2] - qb.shape[2]
        s = (qb @ kb.transpose(-1, -2)) * scale
        mask = torch.arange(kb.shape[2])[None, :] > torch.arange(start, kb.shape[2])[:, None]
        return torch.softmax(s.masked_fill(mask, -math.inf), -1) @ vb

    # Recomputed in the backward, so that no N x N matrix is kept.
    n = qt.shape[2]
    out = [checkpoint(rows, qt[:, :, i:i + block], kt[:, :, :min(i + block, n)],
                      vt[:, :, :min(i + block, n)]) for i in range(0, n, block)]
    return torch.cat(out, 2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads, kind, segments, dilations):
        super().__init__()
        self.heads, self.kind = heads, kind
        self.segments, self.dilations = segments, dilations
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, e = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, e // self.heads).unbind(2)
        q, k = rotary(q), rotary(k)
        if self.kind == "longnet":  # the swap: one call for the other
            o = lt.dilated_attention(q, k, v, self.segments, self.dilations, causal=True)
        else:
            o = dense_attention(q, k, v)
        return self.out(o.reshape(b, n, e))


class Block(nn.Module):
    def __init__(self, dim, heads, kind, segments, dilations):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kind, segments, dilations)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class Model(nn.Module):
    def __init__(self, dim, heads, layers, kind, segments, dilations):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, kind, segments, dilations)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, x):
        h = self.emb(x)
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(h))


def default_levels(n):
    segments = [w for w in (1024, 4096) if w < n] + [n]
    return segments, {1: [1], 2: [1, 8], 3: [1, 2, 8]}[len(segments)]


def train(kind, args, segments, dilations, init):
    model = Model(args.dim, args.heads, args.layers, kind, segments, dilations)
    model.load_state_dict(init)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for step in range(1, args.steps + 1):
        x, y = make_batch(args.batch, args.seq_len, max(dilations), gen)
        t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        mask = y != -100
        acc = (logits.argmax(-1)[mask] == y[mask]).float().mean().item()
        rows.append({"attention": kind, "step": step, "loss": loss.item(), "accuracy": acc,
                     "seconds": dt, "tokens_per_s": args.batch * args.seq_len / dt})
        if step % args.print_every == 0 or step == args.steps:
            print("%-7s step %4d  loss %.3f  acc %.2f  %6.0f tokens/s" % (
                kind, step, loss.item(), acc, rows[-1]["tokens_per_s"]), flush=True)
    return rows


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in dict.fromkeys(r["attention"] for r in rows):
        rs = [r for r in rows if r["attention"] == kind]
        a1.plot([r["step"] for r in rs], [r["loss"] for r in rs], label=kind)
        a2.plot([r["step"] for r in rs], [r["tokens_per_s"] for r in rs], label=kind)
    a1.axhline(math.log(VALUES), color="gray", ls=":", label="chance")
    a1.set(xlabel="step", ylabel="answer loss (nats)", title="loss")
    a2.set(xlabel="step", ylabel="tokens/s (training step)", title="throughput")
    a2.set_yscale("log")
    for a in (a1, a2):
        a.legend()
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attention", choices=("both", "longnet", "dense"), default="both")
    p.add_argument("--seq-len", type=int, default=8192)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--segments", help="longnet's segment lengths (default: 1024,4096,N)")
    p.add_argument("--dilations", help="longnet's dilations (default: 1,2,8)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch's threads")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--print-every", type=int, default=5)
    p.add_argument("--out", default="examples-out", help="directory for losses.csv, training.png")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    segments, dilations = default_levels(args.seq_len)
    if args.segments:
        segments = [int(s) for s in args.segments.split(",")]
    if args.dilations:
        dilations = [int(s) for s in args.dilations.split(",")]
    torch.manual_seed(args.seed)
    init = Model(args.dim, args.heads, args.layers, "longnet", segments, dilations).state_dict()
    kinds = ("longnet", "dense") if args.attention == "both" else (args.attention,)
    print("N=%d batch=%d dim=%d heads=%d layers=%d; longnet segments %s dilations %s; "
          "dense: %s" % (args.seq_len, args.batch, args.dim, args.heads, args.layers, segments,
                         dilations, "SDPA" if hasattr(F, "scaled_dot_product_attention")
                         else "blocked softmax(QK^T)V (torch %s has no SDPA)" % torch.__version__))
    rows = []
    for kind in kinds:
        rows += train(kind, args, segments, dilations, init)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "losses.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("\nsummary (tokens/s: median of the steps after the first):")
    for kind in kinds:
        rs = [r for r in rows if r["attention"] == kind]
        tps = sorted(r["tokens_per_s"] for r in rs[1:]) or [rs[0]["tokens_per_s"]]
        last = rs[-5:]
        print("  %-7s %8.0f tokens/s   loss of the last %d steps %.3f, accuracy %.2f" % (
            kind, tps[len(tps) // 2], len(last), sum(r["loss"] for r in last) / len(last),
            sum(r["accuracy"] for r in last) / len(last)))
    try:
        plot(rows, os.path.join(args.out, "training.png"),
             "needle retrieval, N = %d, %d steps" % (args.seq_len, args.steps))
        print("wrote %s and %s" % (os.path.join(args.out, "losses.csv"),
                                   os.path.join(args.out, "training.png")))
    except ImportError:
        print("wrote %s (no matplotlib: no plot; install python3-matplotlib)"
              % os.path.join(args.out, "losses.csv"))


if __name__ == "__main__":
    main()
