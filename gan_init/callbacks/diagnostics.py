"""Transfer diagnostics: does the knowledge a generator part starts with survive training?

Per part of the noise generator (``latent_stem``, ``trunk``, ``decoder``, ``head``, ``to_image``),
on the measured steps (every ``every_n_images`` images shown, and the first step):

- ``diag/weight_dist/<part>``: ``||w - w0|| / ||w0||`` over the part's parameters (effective
  weights, as the transfer copies them), ``w0`` = the weights when training starts, i.e. after
  ``WeightTransfer`` copied its tensors in at fit start (``scratch``: its own random start);
- ``diag/cka/<part>``: linear CKA (Kornblith et al. 2019, "Similarity of neural network
  representations revisited", eq. 5: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on
  column-centered activations) of the part's output on a fixed, seeded batch of latents against
  the output at the start. Always the full-resolution path ``latent_stem (last block) -> trunk ->
  decoder -> head``, whatever the growth level, so parts that are idle early in ``full`` growth
  are measured too. ``to_image`` (the lower levels' heads) has no CKA;
- ``diag/update_ratio/<part>``: ``||w_after - w_before|| / ||w_before||`` of the one optimizer
  step of that batch (issue 11: with Adam the relative step size depends on the weights' scale).

Rows go to every logger with ``progress/images_shown`` (as the evaluation callback's do) and into
``trainer.callback_metrics``. The reference (``w0`` and each part's centered Gram matrix) is in
this callback's ``state_dict``, so a resumed run measures against the true start.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from gan_init.transfer import effective_state

GENERATOR_PARTS = ("latent_stem", "trunk", "decoder", "head", "to_image")
ACTIVATION_PARTS = ("latent_stem", "trunk", "decoder", "head")


def centered_gram(x: Tensor, chunk: int = 1 << 16) -> Tensor:
    """Linear-kernel Gram matrix of ``x: [n, ...]`` (flattened per sample), double-centered
    (``H K H``, ``H = I - 11^T / n``). ``-> [n, n]`` float64, accumulated over feature chunks so
    large activations are never copied whole in float64."""
    x = x.flatten(1)
    gram = x.new_zeros(x.shape[0], x.shape[0], dtype=torch.float64)
    for part in x.split(chunk, dim=1):
        part = part.double()
        gram += part @ part.T
    # H K H: subtract row and column means, add back the grand mean.
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


def linear_cka(gram_x: Tensor, gram_y: Tensor) -> float:
    """Linear CKA from two centered Gram matrices ``[n, n]``: ``<K, L>_F / (||K||_F ||L||_F)``
    (= Kornblith et al. 2019, eq. 5, since ``<XX^T, YY^T>_F = ||Y^T X||_F^2``). 1 for
    representations equal up to an orthogonal transform and an isotropic scale."""
    num = (gram_x * gram_y).sum()
    den = gram_x.norm() * gram_y.norm()
    return float(num / den) if float(den) > 0 else float("nan")


def _relative_distance(now: dict[str, Tensor], ref: dict[str, Tensor]) -> float:
    """``||now - ref|| / ||ref||`` over all tensors of ``ref`` (one flattened vector)."""
    diff = sum(float((now[k].double() - r.double()).pow(2).sum()) for k, r in ref.items())
    norm = sum(float(r.double().pow(2).sum()) for r in ref.values())
    return (diff / norm) ** 0.5 if norm > 0 else float("nan")


class TransferDiagnostics(Callback):
    """Log weight distance, activation CKA and update size per generator part (module docstring).

    Args:
        every_n_images: measure every so many images shown (counted over all ranks), and at the
            first step. The cost of one measurement is about one generator forward pass over
            ``n_latents`` latents at full resolution plus two copies of the generator's weights.
        n_latents: size of the fixed latent batch of the CKA (its Gram matrices are
            ``n_latents^2`` per part; the activations of one part for all of them are held at
            once).
        seed: seed of the fixed latents (drawn on the CPU, so every device sees the same).
        parts: the generator parts to measure (a part with no parameters is skipped).
    """

    def __init__(
        self,
        every_n_images: int = 2_000,
        n_latents: int = 64,
        seed: int = 0,
        parts: tuple[str, ...] | list[str] = GENERATOR_PARTS,
    ) -> None:
        super().__init__()
        unknown = [p for p in parts if p not in GENERATOR_PARTS]
        if unknown:
            raise ValueError(
                f"TransferDiagnostics parts: unknown {unknown}; expected some of "
                f"{list(GENERATOR_PARTS)}"
            )
        if every_n_images <= 0 or n_latents < 2:
            raise ValueError(
                f"TransferDiagnostics: every_n_images={every_n_images} must be > 0 and "
                f"n_latents={n_latents} >= 2"
            )
        self.every_n_images = int(every_n_images)
        self.n_latents = int(n_latents)
        self.seed = int(seed)
        self.parts = tuple(parts)
        # The reference (state_dict): w0 per part and parameter, the centered Gram per part.
        self.reference_weights: dict[str, dict[str, Tensor]] = {}
        self.reference_grams: dict[str, Tensor] = {}
        self.transferred: list[str] | None = None
        self.next_at = 0
        self._before: dict[str, dict[str, Tensor]] | None = None

    # ---- state (a resumed run measures against the true start) --------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "reference_weights": self.reference_weights,
            "reference_grams": self.reference_grams,
            "parts": list(self.parts),
            "transferred": self.transferred,
            "next_at": self.next_at,
            "n_latents": self.n_latents,
            "seed": self.seed,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if (state_dict["n_latents"], state_dict["seed"]) != (self.n_latents, self.seed):
            rank_zero_warn(
                "TransferDiagnostics: the checkpoint's reference used n_latents="
                f"{state_dict['n_latents']}, seed={state_dict['seed']}; keeping those (the CKA "
                "must compare the same latents)"
            )
            self.n_latents, self.seed = int(state_dict["n_latents"]), int(state_dict["seed"])
        self.reference_weights = {
            part: dict(tensors) for part, tensors in state_dict["reference_weights"].items()
        }
        self.reference_grams = dict(state_dict["reference_grams"])
        self.transferred = state_dict.get("transferred")
        self.next_at = int(state_dict["next_at"])

    # ---- measurements ----------------------------------------------------------------------------

    def _part_modules(self, pl_module: LightningModule) -> dict[str, nn.Module]:
        g = pl_module.generator
        modules = {p: getattr(g, p) for p in self.parts}
        return {p: m for p, m in modules.items() if any(True for _ in m.parameters())}

    @torch.no_grad()
    def weights(self, pl_module: LightningModule) -> dict[str, dict[str, Tensor]]:
        """Per part, its parameters as effective weights (copies)."""
        out = {}
        for part, module in self._part_modules(pl_module).items():
            names = {name for name, _ in module.named_parameters()}
            state = effective_state(module)
            out[part] = {k: v.detach().clone() for k, v in state.items() if k in names}
        return out

    def latents(self, pl_module: LightningModule) -> Tensor:
        rng = torch.Generator().manual_seed(self.seed)
        return torch.randn(self.n_latents, pl_module.latent_dim, generator=rng)

    @torch.no_grad()
    def grams(self, pl_module: LightningModule) -> dict[str, Tensor]:
        """Centered Gram matrices of the outputs of ``latent_stem`` (its last block), ``trunk``,
        ``decoder`` and ``head`` on the full-resolution path, for the fixed latents."""
        g = pl_module.generator
        z = self.latents(pl_module).to(pl_module.device)
        was_training = g.training
        g.eval()  # a norm layer with running statistics must not update them here
        wanted = [p for p in ACTIVATION_PARTS if p in self.parts]
        grams = {}
        try:
            # One part's activations at a time (the decoder's are the largest: n x W x full side).
            h = g.latent_stem(z)[-1]
            for part in ACTIVATION_PARTS:
                h = h if part == "latent_stem" else getattr(g, part)(h)
                if part in wanted:
                    grams[part] = centered_gram(h.float())
        finally:
            g.train(was_training)
        return grams

    # ---- hooks -----------------------------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        generator = getattr(pl_module, "generator", None)
        if generator is None or not all(hasattr(generator, p) for p in GENERATOR_PARTS):
            raise TypeError(
                "TransferDiagnostics measures a noise GAN (gan_init.models.ProgressiveGAN) whose "
                f"generator has parts {list(GENERATOR_PARTS)}; the model is a "
                f"{type(pl_module).__name__}. Remove the callback from this run"
            )

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.reference_weights:
            self._take_reference(trainer, pl_module)
        if int(pl_module.images_shown) >= self.next_at:
            self._before = self.weights(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._before is None:
            return
        shown = int(pl_module.images_shown)
        while self.next_at <= shown:
            self.next_at += self.every_n_images
        values = self.measure(pl_module, before=self._before)
        self._before = None
        for name, value in values.items():
            trainer.callback_metrics[name] = torch.tensor(value)
        if trainer.is_global_zero:
            row = {**values, "progress/images_shown": float(shown)}
            for logger in trainer.loggers:
                logger.log_metrics(row, step=trainer.global_step)

    def measure(
        self, pl_module: LightningModule, before: dict[str, dict[str, Tensor]] | None = None
    ) -> dict[str, float]:
        """``diag/weight_dist/<part>``, ``diag/cka/<part>`` and (given the weights ``before``
        the step) ``diag/update_ratio/<part>`` for the current weights."""
        now = self.weights(pl_module)
        values = {}
        for part, ref in self.reference_weights.items():
            ref = {k: v.to(pl_module.device) for k, v in ref.items()}
            values[f"diag/weight_dist/{part}"] = _relative_distance(now[part], ref)
        for part, gram in self.grams(pl_module).items():
            ref_gram = self.reference_grams[part].to(gram.device)
            values[f"diag/cka/{part}"] = linear_cka(gram, ref_gram)
        for part, old in (before or {}).items():
            values[f"diag/update_ratio/{part}"] = _relative_distance(now[part], old)
        return values

    def _take_reference(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.ckpt_path is not None:
            rank_zero_warn(
                f"TransferDiagnostics: resuming from {trainer.ckpt_path}, which holds no "
                "diagnostics reference: distances and CKA are measured from the resumed weights, "
                "not from the start of training"
            )
        self.reference_weights = self.weights(pl_module)
        self.reference_grams = self.grams(pl_module)
        self.next_at = int(pl_module.images_shown)
        self.transferred = self._transferred_parts(pl_module)
        if trainer.is_global_zero:
            record = {
                "diag/parts": ",".join(self.reference_weights),
                "diag/transferred": "none"
                if self.transferred is None
                else ",".join(self.transferred) or "none",
            }
            for logger in trainer.loggers:
                logger.log_hyperparams(record)
        rank_zero_info(
            f"TransferDiagnostics: reference taken at {int(pl_module.images_shown)} images for "
            f"parts {list(self.reference_weights)} (transferred: {self.transferred})"
        )

    @staticmethod
    def _transferred_parts(pl_module: LightningModule) -> list[str] | None:
        """Generator parts with copied parameters, from the summary ``WeightTransfer`` set on the
        model (None when the run has no weight transfer)."""
        summary = pl_module.transfer_summary
        if summary is None:
            return None
        return [
            part
            for part, row in summary["parts"].items()
            if part in GENERATOR_PARTS and row.get("copied_parameters", 0) > 0
        ]
