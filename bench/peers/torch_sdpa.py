#!/usr/bin/env python3
"""torch_sdpa.py: longnet's operator written over PyTorch, the peer that
`longnet-bench --peer torch` times beside longnet.

It is the dilated attention of doc/ARCHITECTURE.md "The operator", written
the way a PyTorch user would: for each level (w, r) and each head offset o,
the selected rows s*w + o + j*r of every segment are gathered by slicing,
attended with PyTorch's CPU flash-attention kernel (what
torch.nn.functional.scaled_dot_product_attention runs for float32 on a CPU,
called through its aten op because that one also returns the log-sum-exp
the levels mix by), and folded into a running (O, LSE) by their softmax
denominators: LSE = log sum_i exp(lse_i), O = sum_i exp(lse_i - LSE) o_i.
Full segments go in one batched call per offset, the shorter last segment
in its own; nothing is padded. Offsets: interleaved (o = h mod r, heads
o, o+r, ...) or grouped (o = h / ceil(H / r), a block of heads).

Commands (the bench's protocol; every answer is one line of key=value
pairs on stdout, an error a line on stderr and exit status 1, no torch >= 2
exit status 3):
  torch_sdpa.py --version
  torch_sdpa.py time  SHAPE LEVELS [--repeat R] [--warmup W] [--threads T]
  torch_sdpa.py check SHAPE LEVELS --q Q.npy --k K.npy --v V.npy --o O.npy
      (max |O_torch - O| against longnet's O for those inputs)
SHAPE: --batch B --length N --heads H --dim D; LEVELS: --segments LIST
--dilations LIST [--causal] [--offsets interleaved|grouped].
The .npy reader handles what lnet_npy_save writes (little-endian float32,
C order) without numpy.
"""
import argparse
import ast
import math
import statistics
import struct
import sys
import time
import warnings

# torch warns on import when numpy is absent; nothing here needs numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
try:
    import torch
except ImportError as e:  # the bench says what to install
    print(f"torch_sdpa.py: cannot import torch ({e}): run scripts/install-peers",
          file=sys.stderr)
    sys.exit(3)

if int(torch.__version__.split(".")[0]) < 2:
    print(f"torch_sdpa.py: torch {torch.__version__} has no scaled_dot_product_attention "
          "(needs >= 2): run scripts/install-peers", file=sys.stderr)
    sys.exit(3)


def fail(msg):
    print(f"torch_sdpa.py: {msg}", file=sys.stderr)
    sys.exit(1)


def attend(q, k, v, causal, scale):
    """(out, lse) of softmax(scale q k^T) v for [B, H, L, D] tensors."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        out, lse = op(q, k, v, 0.0, causal, scale=scale)
        return out, lse
    # Older torch 2.x: the public call, and the denominators computed
    # apart (slower: the scores twice), so that the levels still mix.
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                           scale=scale)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return out, torch.logsumexp(s, dim=-1)


def heads_of(o, r, h, offsets):
    """The heads whose offset is o: a slice either way."""
    if offsets == "interleaved":
        return slice(o, h, r)
    g = -(-h // r)
    return slice(o * g, min((o + 1) * g, h))


def dilated_attention(q, k, v, segments, dilations, causal, offsets):
    """O [B, N, H, D] of the operator for Q, K, V [B, N, H, D]."""
    b, n, h, d = q.shape
    scale = 1.0 / math.sqrt(d)
    out_acc = torch.zeros_like(q)
    lse_acc = torch.full((b, n, h), float("-inf"), dtype=q.dtype)
    for w, r in zip(segments, dilations):
        w = min(w, n)
        full = n // w
        parts = []  # (start, segments, length): the full segments, then the rest
        if full:
            parts.append((0, full, w))
        if n - full * w:
            parts.append((full * w, 1, n - full * w))
        for start, count, length in parts:
            end = start + count * length
            qs, ks, vs = (t[:, start:end].view(b, count, length, h, d) for t in (q, k, v))
            os_ = out_acc[:, start:end].view(b, count, length, h, d)
            ls_ = lse_acc[:, start:end].view(b, count, length, h)
            for o in range(min(r, length)):
                hs = heads_of(o, r, h, offsets)
                if hs.start >= h:
                    continue

                def pick(t):
                    # [B, count, L, Hg, D] -> [B*count, Hg, L, D], contiguous
                    x = t[:, :, o::r, hs]
                    return x.permute(0, 1, 3, 2, 4).reshape(-1, x.shape[3], x.shape[2], d)

                out, lse = attend(pick(qs), pick(ks), pick(vs), causal, scale)
                sel = os_[:, :, o::r, hs]
                lsel = ls_[:, :, o::r, hs]
                shape = sel.shape  # [B, count, L, Hg, D]
                out = out.view(b, count, shape[3], shape[2], d).permute(0, 1, 3, 2, 4)
                lse = lse.view(b, count, shape[3], shape[2]).permute(0, 1, 3, 2)
                new = torch.logaddexp(lsel, lse)
                sel.mul_(torch.exp(lsel - new).unsqueeze(-1))
                sel.add_(out * torch.exp(lse - new).unsqueeze(-1))
                lsel.copy_(new)
    return out_acc


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        fail(f"'{path}' is not a .npy file")
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = struct.unpack("<H" if hlen_size == 2 else "<I", data[8:8 + hlen_size])[0]
    start = 8 + hlen_size + hlen
    header = ast.literal_eval(data[8 + hlen_size:start].decode("latin1"))
    if header.get("descr") != "<f4" or header.get("fortran_order"):
        fail(f"'{path}': {header.get('descr')} (fortran {header.get('fortran_order')}), "
             "not little-endian float32 in C order")
    shape = tuple(header["shape"])
    return torch.frombuffer(bytearray(data[start:]), dtype=torch.float32).view(shape)


def int_list(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a comma list of integers")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"'{s}' has a value below 1")
    return v


def main():
    if sys.argv[1:] == ["--version"]:
        print(f"torch={torch.__version__} threads={torch.get_num_threads()}")
        return
    ap = argparse.ArgumentParser(prog="torch_sdpa.py")
    ap.add_argument("command", choices=["time", "check"])
    for name in ("batch", "length", "heads", "dim"):
        ap.add_argument("--" + name, type=int, required=True)
    ap.add_argument("--segments", type=int_list, required=True)
    ap.add_argument("--dilations", type=int_list, required=True)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--offsets", choices=["interleaved", "grouped"], default="interleaved")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    for name in ("q", "k", "v", "o"):
        ap.add_argument("--" + name)
    a = ap.parse_args()
    if len(a.segments) != len(a.dilations):
        fail(f"{len(a.segments)} segments but {len(a.dilations)} dilations")
    if any(r > w for w, r in zip(a.segments, a.dilations)) or 1 not in a.dilations:
        fail("every dilation must be <= its segment, and one of them 1")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    shape = (a.batch, a.length, a.heads, a.dim)
    run = lambda q, k, v: dilated_attention(q, k, v, a.segments, a.dilations, a.causal,
                                            a.offsets)
    with torch.no_grad():
        if a.command == "check":
            if not all((a.q, a.k, a.v, a.o)):
                fail("check needs --q, --k, --v and --o")
            q, k, v, o = (read_npy(p) for p in (a.q, a.k, a.v, a.o))
            if any(tuple(t.shape) != shape for t in (q, k, v, o)):
                fail(f"the .npy shapes {[tuple(t.shape) for t in (q, k, v, o)]} are not {shape}")
            err = (run(q, k, v) - o).abs().max().item()
            print(f"torch={torch.__version__} max_abs_err={err!r}")
            return
        g = torch.Generator().manual_seed(1)
        q, k, v = (torch.rand(shape, generator=g) * 2 - 1 for _ in range(3))
        ms = []
        for i in range(a.warmup + a.repeat):
            t0 = time.perf_counter()
            run(q, k, v)
            if i >= a.warmup:
                ms.append((time.perf_counter() - t0) * 1e3)
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} "
          f"median_ms={statistics.median(ms)!r} min_ms={min(ms)!r} max_ms={max(ms)!r}")


if __name__ == "__main__":
    main()
