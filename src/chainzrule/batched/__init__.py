"""Batched training: M runs that share every shape trained at once as one stacked model.

A Fair Fight trains many tiny models (a Pima network has ~1,700 parameters), so a step of one run
is Python and dispatch overhead, not arithmetic. Runs that differ only in their seed — and in
per-run scalar hyperparameters (learning rate, coefficient-lr scale, DREG λ and its schedule,
regularizer strength, patience, evaluation options: :data:`PER_MEMBER_FIELDS`) — have identical
shapes, so their parameters can be stacked along a new leading "member" dimension ``[M, ...]``
(``torch.func.stack_module_state``) and trained as one model:

- every member is built exactly as :func:`chainzrule.train.train` builds it (seeded by its own
  ``cfg.seed``), then the members are stacked;
- every member draws its own batch order (``torch.Generator().manual_seed(seed * 100_003 + epoch)``)
  from its own validation carve: inputs are ``[M, B, D]``;
- the objective is computed per member (its task loss, its own DREG term times its own λ(step),
  its own regularizer term times its own strength); the sum over members is backpropagated once,
  which gives every member exactly its own gradient (members never interact);
- the optimizer is Adam / AdamW / SGD (Nesterov) written over the stacked tensors with the
  *same arithmetic* as ``torch.optim``'s single-tensor implementation, with a per-member learning
  rate (a ``[M, 1, ...]`` step size) taken from each member's own scheduler (OneCycle / cosine /
  constant, replayed on the member's real ``torch.optim`` optimizer, momentum/β₁ cycling included);
- gradient-norm trace, training loss/accuracy sums, per-epoch validation accuracy, early stopping
  with best-epoch restore and the divergence stop are kept per member; a member that stops leaves
  the stack (the stack is compacted, so it costs nothing afterwards);
- at the end each member's weights go back into its own ordinary model, which is evaluated by
  :func:`chainzrule.train.evaluate` with the global RNG in the state it would have had in
  :func:`~chainzrule.train.train`, and its record is built by the same code as there.

Two engines compute the stacked forward:

- ``"grouped"`` (default where it applies): the forward of a :class:`~chainzrule.models.FeedForward`
  (``nn.Linear`` hidden layers with a polynomial or ReLU/GELU/SiLU/tanh activation, ``nn.Linear``
  head) written out with batched matmuls (``baddbmm``); a polynomial activation runs as
  :mod:`chainzrule.functional`'s per-feature kernel on the members folded into the feature
  axis (``[B, M·F]``, each feature with its own member's coefficients). ``torch.func.vmap``
  wraps every op of a tiny network in more Python than the op itself costs (measured: ~3x
  slower than this on Pima); this is the fast path.
  Input-gradient regularizers (igp, jr) work here: one ``autograd.grad`` of the sum over members
  is every member's own input gradient; jr draws each member's projections from its own
  seeded generator, in the order the unbatched run draws them.
  A plain :class:`~chainzrule.kan.KAN` (no input LayerNorm, loss-side regularizer or logit
  temperature) has its own grouped forward (:class:`~chainzrule.batched.engines.GroupedKAN`: the
  B-spline bases of ``[M, B, in]`` and two ``bmm`` per layer; measured bitwise equal to vmap's in
  float32 on Pima-sized KANs).
- ``"vmap"``: ``torch.func.vmap`` of ``torch.func.functional_call`` of the model and objective
  (the fused polynomial kernel has a generated vmap rule): any model whose ops vmap; not igp/jr
  (``autograd.grad`` inside ``vmap`` is not supported).

So per run the result is the one :func:`~chainzrule.train.train` gives (float64: equal to 1e-9,
tested for both engines), except the timing fields: ``train_seconds`` is the member's share of
the batch's wall time (each epoch's time divided among the members still training), ``step_ms``
follows from it; ``peak_memory_mb`` is the process's, as always.

What can be batched (:func:`batchable`): chainzrule and mlp models with a linear
(classification) head, reg none, wd, igp or jr, or spectral norm without DREG (the grouped
engine gives every member its own power-iteration vectors and logit temperature); KAN (without
spectral norm, gradient penalties or a logit temperature; grouped when plain, else vmap); any
optimizer and schedule. Not batched (trained one by one as before): ordinal heads (their label
checks are data-dependent) and the classical baselines. A batch's final runs are attacked by
APGD all at once through the stacked forward (:mod:`chainzrule.batched.attack`).

>>> from chainzrule.config import TrainConfig
>>> cfgs = [TrainConfig(dataset="synthetic", model="mlp", hidden=(8,), epochs=1, batch_size=256,
...                     seed=s, diag_examples=50) for s in (0, 1)]
>>> runs = train_batched(cfgs, test=False)
>>> [r.result["epochs_run"] for r in runs]
[1, 1]
"""

from .grouping import BATCHABLE_MODELS, BATCHABLE_REGS, ENGINES, PER_MEMBER_FIELDS, batch_key, batchable, eligible_groups
from .run import execute_group, train_batched

__all__ = ["BATCHABLE_MODELS", "BATCHABLE_REGS", "PER_MEMBER_FIELDS", "ENGINES", "batchable", "batch_key",
           "eligible_groups", "train_batched", "execute_group"]
