"""MultiheadDilatedAttention in a two-layer model: one SGD step with
longnet's attention (float32) leaves the parameters where the same step
with the pure-PyTorch reference attention (float64) leaves them. A
reference with another scale must be told apart."""
import copy

import torch
import torch.nn as nn

import longnet.torch as lt
from pyref import Checks, reference_attention

c = Checks()
torch.manual_seed(17)
E, HEADS, N = 32, 4, 96
LEVELS = dict(segments=[16, 32, 96], dilations=[1, 2, 4], causal=True)


class ReferenceMHA(lt.MultiheadDilatedAttention):
    """The same module, its attention computed by pyref."""
    scale_override = None

    def attend(self, q, k, v):
        scale = self.scale_override if self.scale_override is not None else self.scale
        return reference_attention(q, k, v, self.segments, self.dilations, self.causal,
                                   self.offsets, scale)[0]


class Block(nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.attn = attn
        self.mlp = nn.Sequential(nn.Linear(E, 2 * E), nn.GELU(), nn.Linear(2 * E, E))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h)[0]
        return x + self.mlp(self.norm2(x))


def model(mha_class):
    return nn.Sequential(Block(mha_class(E, HEADS, **LEVELS)), Block(mha_class(E, HEADS, **LEVELS)),
                         nn.Linear(E, 8))


def one_step(net, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = nn.functional.cross_entropy(net(x).flatten(0, 1), y.flatten())
    loss.backward()
    opt.step()
    return loss.item()


x = torch.randn(2, N, E)
y = torch.randint(0, 8, (2, N))
ours = model(lt.MultiheadDilatedAttention)
start = copy.deepcopy(ours.state_dict())


def reference_step(scale=None):
    ref = model(ReferenceMHA).double()
    ref.load_state_dict(start)
    for m in ref.modules():
        if isinstance(m, ReferenceMHA):
            m.scale_override = scale
    return one_step(ref, x.double(), y), ref.state_dict()


loss = one_step(ours, x, y)
ref_loss, ref_params = reference_step()
c.close("loss before the step", torch.tensor(loss), torch.tensor(ref_loss), 1e-5)
moved = max((ref_params[n] - start[n].double()).abs().max().item() for n in start)
c.true("the step moves the parameters", moved > 1e-2, "largest change %.3g" % moved)
worst = max((ours.state_dict()[n].double() - ref_params[n]).abs().max().item() for n in start)
c.true("parameters after the step match the reference step", worst <= 1e-5,
       "max difference %.3g over %d tensors" % (worst, len(start)))
_, wrong = reference_step(scale=0.3)
worst_wrong = max((ours.state_dict()[n].double() - wrong[n]).abs().max().item() for n in start)
c.true("a reference step with another scale is told apart", worst_wrong > 1e-5,
       "max difference %.3g" % worst_wrong)

# Drop-in: the parameters are nn.MultiheadAttention's, by name and shape.
mha = nn.MultiheadAttention(E, HEADS, batch_first=True)
ours_mha = lt.MultiheadDilatedAttention(E, HEADS, **LEVELS)
ours_mha.load_state_dict(mha.state_dict())
c.true("a torch.nn.MultiheadAttention state_dict loads", True)
c.finish()
