"""A pre-LN transformer block whose MLP activation is a ChainzRule polynomial, trained with
token-wise DREG over the real tokens of padded sequences.

The block is the usual ``x + Attn(LN(x))``, ``x + MLP(LN(x))``; its MLP is
``HiddenLayer(d, 4d, PolynomialActivation(4d))`` followed by ``nn.Linear(4d, d)``. On ``[B, T, d]``
the hidden layer reports one DREG term per token, ``[B, T]``; ``terms.penalty(mask=real)`` averages
it over the real tokens only, so padding (whatever it holds) neither dilutes nor drives the penalty.

Toy task: random token sequences of random length (padded to ``max_len``); the label says whether
the sequence contains token 1. Run::

    python examples/transformer_block.py          # 100 steps, a few seconds on one CPU thread

and it prints the loss, accuracy and the masked DREG penalty as it trains.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from chainzrule import HiddenLayer, PolynomialActivation, dreg


class Block(nn.Module):
    """Pre-LN transformer block with a polynomial MLP: ``[B, T, d]`` → ``[B, T, d]``."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.up = HiddenLayer(d, 4 * d, PolynomialActivation(4 * d))  # the DREG layer
        self.down = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        a = self.ln1(x)
        x = x + self.attn(a, a, a, key_padding_mask=~real, need_weights=False)[0]
        return x + self.down(self.up(self.ln2(x)))


class Classifier(nn.Module):
    """Embedding + one block + masked mean pooling + linear head: tokens ``[B, T]`` → logits ``[B, 2]``."""

    def __init__(self, vocab: int, max_len: int, d: int, heads: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, d))
        self.block = Block(d, heads)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        h = self.block(self.embed(tokens) + self.pos[: tokens.shape[1]], real)  # [B, T, d]
        w = real.unsqueeze(-1).to(h.dtype)  # [B, T, 1]
        pooled = (h * w).sum(1) / w.sum(1).clamp_min(1)  # mean over the real tokens   [B, d]
        return self.head(self.ln(pooled))


def make_batch(batch: int, max_len: int, vocab: int, generator: torch.Generator):
    """``(tokens [B, T], real [B, T] bool, labels [B])``: half the sequences contain token 1."""
    lengths = torch.randint(2, max_len + 1, (batch,), generator=generator)
    real = torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    tokens = torch.randint(2, vocab, (batch, max_len), generator=generator)
    labels = torch.randint(0, 2, (batch,), generator=generator)
    where = (torch.rand(batch, generator=generator) * lengths).long()  # a real position
    tokens[labels.bool(), where[labels.bool()]] = 1
    tokens[~real] = 0  # the padding token
    return tokens, real, labels


def main(d_model: int = 32, heads: int = 4, vocab: int = 16, max_len: int = 16, batch: int = 64,
         steps: int = 100, lam: float = 1e-3, lr: float = 3e-3, seed: int = 0, log_every: int = 50) -> dict:
    """Train the toy classifier with masked DREG; returns the first/last losses, accuracy and penalties."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Classifier(vocab, max_len, d_model, heads)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        tokens, real, labels = make_batch(batch, max_len, vocab, gen)
        with dreg.collect(model) as terms:
            logits = model(tokens, real)
        task = F.cross_entropy(logits, labels)
        penalty = terms.penalty(mask=real)  # mean over the real tokens, not over B·T
        loss = task + lam * penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(task.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  task loss {losses[-1]:.4f}  DREG (real tokens) {float(penalty.detach()):.3f}")
    tokens, real, labels = make_batch(512, max_len, vocab, gen)
    with torch.no_grad(), dreg.collect(model, always=True) as terms:
        accuracy = float((model(tokens, real).argmax(1) == labels).float().mean())
    result = {"first_loss": sum(losses[:5]) / len(losses[:5]), "last_loss": sum(losses[-5:]) / len(losses[-5:]),
              "accuracy": accuracy, "penalty_real_tokens": float(terms.penalty(mask=real)),
              "penalty_all_positions": float(terms.penalty())}
    print(f"held-out accuracy {accuracy:.3f}; DREG over real tokens {result['penalty_real_tokens']:.3f} "
          f"(over all B·T positions, padding included: {result['penalty_all_positions']:.3f})")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (tiny tensors: 1 is fastest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    main(d_model=args.d_model, steps=args.steps, lam=args.lam)
