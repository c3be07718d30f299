"""longnet.torch — dilated attention inside PyTorch.

dilated_attention(q, k, v, ...) is a torch.autograd.Function: the forward
keeps O and the log-sum-exp, and the backward hands them to liblongnet's
backward (nothing N x N is stored). MultiheadDilatedAttention is shaped
like torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True),
its projections included, so swapping it into a model is one line.

CPU tensors only: the library reads and writes them in place through
data_ptr() and their strides (no copy).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _lib

_TORCH_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _input(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError("longnet.torch: %s is a %s, not a torch.Tensor" % (name, type(t).__name__))
    if t.device.type != "cpu":
        raise ValueError("longnet.torch: %s is on %s; liblongnet reads host memory (CPU "
                         "tensors): choose the library's device with device=" % (name, t.device))
    if t.dtype not in _TORCH_DTYPES:
        raise TypeError("longnet.torch: %s has dtype %s; the attention takes float32 tensors"
                        % (name, t.dtype))
    t = t.detach()
    if any(s < 0 for s in t.stride()):
        t = t.contiguous()
    return t


def _view(tensors, t):
    return tensors.wrap(t.data_ptr(), _TORCH_DTYPES[t.dtype], tuple(t.shape), t.stride())


def _forward(q, k, v, cfg_args, run_args):
    q, k, v = _input(q, "q"), _input(k, "k"), _input(v, "v")
    out = torch.empty(q.shape, dtype=q.dtype)
    lse_shape = (q.shape[0], q.shape[2], q.shape[1]) if q.dim() == 4 else (1,)
    lse = torch.empty(lse_shape, dtype=torch.float32)
    opts = _lib.run_options(*run_args)
    with _lib.Config(*cfg_args) as cfg, _lib.Tensors() as t:
        _lib.forward(cfg, _view(t, q), _view(t, k), _view(t, v), _view(t, out), _view(t, lse),
                     opts)
    return out, lse


def _backward(q, k, v, out, lse, dout, cfg_args, run_args):
    q, k, v, dout = _input(q, "q"), _input(k, "k"), _input(v, "v"), _input(dout, "dout")
    dq, dk, dv = (torch.empty(a.shape, dtype=a.dtype) for a in (q, k, v))
    opts = _lib.run_options(*run_args)
    with _lib.Config(*cfg_args) as cfg, _lib.Tensors() as t:
        _lib.backward(cfg, _view(t, q), _view(t, k), _view(t, v), _view(t, out), _view(t, lse),
                      _view(t, dout), _view(t, dq), _view(t, dk), _view(t, dv), opts)
    return dq, dk, dv


class DilatedAttentionFunction(torch.autograd.Function):
    """The autograd node: forward and backward both in liblongnet."""

    @staticmethod
    def forward(ctx, q, k, v, cfg_args, run_args):
        out, lse = _forward(q, k, v, cfg_args, run_args)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.cfg_args, ctx.run_args = cfg_args, run_args
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:
            return None, None, None, None, None
        dq, dk, dv = _backward(q, k, v, out, lse, dout, ctx.cfg_args, ctx.run_args)
        return dq, dk, dv, None, None


def dilated_attention(q, k, v, segments, dilations, causal=False, offsets="interleaved",
                      scale=None, device="cpu", return_lse=False, kernel=None,
                      algorithm="auto"):
    """As longnet.dilated_attention, on CPU torch tensors [B, N, H, D], and
    differentiable with respect to q, k and v (the log-sum-exp is not)."""
    cfg_args = (tuple(_lib._levels(segments, "segments")),
                tuple(_lib._levels(dilations, "dilations")), bool(causal), offsets, scale)
    out, lse = DilatedAttentionFunction.apply(q, k, v, cfg_args, (device, kernel, algorithm))
    return (out, lse) if return_lse else out


class MultiheadDilatedAttention(nn.Module):
    """nn.MultiheadAttention(embed_dim, num_heads, batch_first=True) with
    dilated attention: the same parameters (in_proj_weight, in_proj_bias,
    out_proj), so a state_dict moves between the two, and the same call,
    module(query, key, value) -> (output, None), on [B, N, E] tensors.

    causal=True is the decoder's mask (attn_mask and key_padding_mask are
    not taken: the mask is the operator's). need_weights is refused, as
    the weights are never formed."""

    def __init__(self, embed_dim, num_heads, segments, dilations, causal=False,
                 offsets="interleaved", scale=None, bias=True, batch_first=True,
                 device_list="cpu", kernel=None, algorithm="auto", dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError("MultiheadDilatedAttention: embed_dim %d is not a positive "
                             "multiple of num_heads %d" % (embed_dim, num_heads))
        if not batch_first:
            raise ValueError("MultiheadDilatedAttention: batch_first=False is not supported "
                             "(inputs are [batch, sequence, embed_dim])")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first = True
        self.segments = tuple(_lib._levels(segments, "segments"))
        self.dilations = tuple(_lib._levels(dilations, "dilations"))
        self.causal, self.offsets, self.scale = bool(causal), offsets, scale
        self.device_list, self.kernel, self.algorithm = device_list, kernel, algorithm
        # Checked now, so that a bad level fails where the module is made.
        with _lib.Config(self.segments, self.dilations, self.causal, offsets, scale) as cfg:
            _lib.check(_lib.lib.lnet_config_validate(cfg.handle, self.head_dim))
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, dtype=dtype))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, dtype=dtype)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        # nn.MultiheadAttention's initialisation.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def attend(self, q, k, v):
        """[B, N, H, D] q, k, v -> [B, N, H, D]: the attention itself (a
        subclass may replace it, the tests do with a reference)."""
        return dilated_attention(q, k, v, self.segments, self.dilations, causal=self.causal,
                                 offsets=self.offsets, scale=self.scale, device=self.device_list,
                                 kernel=self.kernel, algorithm=self.algorithm)

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights=False,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if need_weights:
            raise ValueError("MultiheadDilatedAttention: need_weights=True: dilated attention "
                             "never forms the attention weights")
        if key_padding_mask is not None or attn_mask is not None:
            raise ValueError("MultiheadDilatedAttention: masks are not taken; the causal mask "
                             "is the module's causal=True")
        key = query if key is None else key
        value = key if value is None else value
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.split(e)
        wq, wk, wv = w.split(e)
        q = F.linear(query, wq, bq).unflatten(-1, (h, d))
        k = F.linear(key, wk, bk).unflatten(-1, (h, d))
        v = F.linear(value, wv, bv).unflatten(-1, (h, d))
        o = self.attend(q, k, v)
        return self.out_proj(o.flatten(-2)), None

    def extra_repr(self):
        return ("embed_dim=%d, num_heads=%d, segments=%s, dilations=%s, causal=%s, device=%s"
                % (self.embed_dim, self.num_heads, list(self.segments), list(self.dilations),
                   self.causal, self.device_list))

