"""Mass decorrelation of a classifier: an adversary, or a distance-correlation (DisCo) penalty.

``decorrelate='adversary'`` (Louppe, Kagan, Cranmer arXiv:1611.01046; Shimmin et al.
arXiv:1703.03507): an adversary network reads the classifier's signal logit and predicts the
bin of the jet (soft-drop) mass of *background* jets (bins are training-set background
quantiles). Updates alternate: the adversary minimises its cross-entropy ``L_adv`` on the
detached classifier output; then the classifier minimises ``L_clf − λ·L_adv`` with the
adversary fixed, so its gradient includes the adversarial term.

``decorrelate='disco'`` (Kasieczka, Shih arXiv:2001.05310): the classifier minimises
``L_clf + λ·dCorr²(score, mass)`` over background jets in each batch, with the (weighted)
distance correlation :func:`distance_correlation`.

:func:`make_decorrelation` gives the object the training loop calls once per batch
(:class:`AdversaryDecorrelation` or :class:`DiscoDecorrelation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .config import TrainConfig

__all__ = [
    "distance_correlation", "Adversary", "adversary_loss", "mass_bin_edges", "signal_logit",
    "Decorrelation", "AdversaryDecorrelation", "DiscoDecorrelation", "make_decorrelation",
]


def distance_correlation(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Squared distance correlation dCorr²(x, y) of two 1D torch tensors (Székely et al.).

    0 for independent variables (in the large-sample limit), 1 for a linear relation. With
    ``weights`` (normalised to mean 1 here) as in the DisCo paper. O(n²) memory.
    """
    import torch

    x = x.reshape(-1)
    y = y.reshape(-1).to(x.dtype)
    n = x.shape[0]
    w = torch.ones_like(x) if weights is None else weights.reshape(-1).to(x.dtype)
    w = w * (n / w.sum())
    a = (x.unsqueeze(0) - x.unsqueeze(1)).abs()
    b = (y.unsqueeze(0) - y.unsqueeze(1)).abs()
    a_mean = (a * w).mean(dim=1)
    b_mean = (b * w).mean(dim=1)
    A = a - a_mean.unsqueeze(0) - a_mean.unsqueeze(1) + (a_mean * w).mean()
    B = b - b_mean.unsqueeze(0) - b_mean.unsqueeze(1) + (b_mean * w).mean()
    ww = w.unsqueeze(0) * w.unsqueeze(1)
    ab = (A * B * ww).mean()
    aa = (A * A * ww).mean()
    bb = (B * B * ww).mean()
    return ab / torch.sqrt(aa * bb + 1e-20)


class Adversary:  # namespace for the factory, keeps torch import lazy
    """``Adversary.build(n_bins)``: an MLP signal-logit → logits over ``n_bins`` mass bins."""

    @staticmethod
    def build(n_bins: int, hidden: int = 64) -> torch.nn.Module:
        """The adversary network: signal logit ``(b, 1)`` → ``(b, n_bins)`` logits."""
        from torch import nn

        return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_bins))


def signal_logit(logits: torch.Tensor, signal_index: int) -> torch.Tensor:
    """A scalar per example: log p_signal − log(1 − p_signal) from the class logits."""
    import torch

    if logits.shape[1] == 2:
        return logits[:, signal_index] - logits[:, 1 - signal_index]
    logp = torch.log_softmax(logits, dim=1)
    ls = logp[:, signal_index]
    return ls - torch.log1p(-torch.exp(ls).clamp(max=1 - 1e-6))


def mass_bin_edges(mass: Any, n_bins: int) -> np.ndarray:
    """Inner edges of ``n_bins`` quantile bins of ``mass`` (``np.searchsorted`` gives the bin)."""
    return np.unique(np.quantile(np.asarray(mass, dtype=np.float64), np.linspace(0, 1, n_bins + 1))[1:-1])


def adversary_loss(adversary: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor, y: torch.Tensor,
                   mass_bin: torch.Tensor, weights: torch.Tensor, signal_index: int = 1) -> torch.Tensor | None:
    """Weighted cross-entropy of ``adversary`` predicting ``mass_bin`` from the classifier's
    signal logit, over the background examples (``y != signal_index``) of a batch.

    Gradients flow into ``logits`` (hence into the classifier) unless they are detached.
    Returns None when the batch has no background.
    """
    import torch

    bkg = y != signal_index
    if not bool(bkg.any()):
        return None
    s = signal_logit(logits[bkg], signal_index).unsqueeze(1)
    ce = torch.nn.functional.cross_entropy(adversary(s), mass_bin[bkg], reduction="none")
    return (ce * weights[bkg]).sum() / weights[bkg].sum()


class Decorrelation:
    """What the training loop asks of a decorrelation method, once per batch.

    Subclasses keep the epoch's running figures (:meth:`epoch_figures`) and their own state for
    the checkpoint (:meth:`state_dict` / :meth:`load_state_dict`).
    """

    def pretrain(self, model: torch.nn.Module, batches: Callable[[], Iterator[torch.Tensor]], Xt: torch.Tensor,
                 device: str) -> None:
        """Before the first epoch (nothing by default)."""

    def before_step(self, logits: torch.Tensor, idx: torch.Tensor) -> None:
        """With the classifier's logits of a batch, before its loss is formed (nothing by default)."""

    def classifier_loss(self, l_clf: torch.Tensor, logits: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor,
                        idx: torch.Tensor) -> torch.Tensor:
        """The classifier's loss for the batch: ``l_clf`` with the decorrelation term."""
        return l_clf

    def epoch_figures(self) -> tuple[float | None, float | None]:
        """(mean adversary loss, mean penalty) of the epoch, each None when not measured; resets."""
        return None, None

    def validation_penalty(self, probs: np.ndarray, y: np.ndarray, w: np.ndarray, mass: np.ndarray) -> float:
        """The decorrelation term on the validation set (added to the validation loss for
        ``monitor='loss'``; 0 by default)."""
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        """Entries this decorrelation adds to the checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Read back what :meth:`state_dict` wrote (the entries may be absent)."""


class AdversaryDecorrelation(Decorrelation):
    """Alternating adversary updates (see the module docstring)."""

    def __init__(self, adversary: torch.nn.Module | None, mass: Any, y: Any, weights: Any, *, lam: float, n_bins: int,
                 lr: float, steps: int, pretrain_epochs: int, signal_index: int, device: str) -> None:
        import torch

        self.bin_edges = mass_bin_edges(np.asarray(mass)[np.asarray(y) != signal_index], n_bins)
        if adversary is None:
            adversary = Adversary.build(len(self.bin_edges) + 1)
        self.adversary = adversary.to(device)
        self.opt = torch.optim.Adam(self.adversary.parameters(), lr=lr)
        self.mass_bin = torch.as_tensor(np.searchsorted(self.bin_edges, np.asarray(mass)), dtype=torch.long)
        self.y = torch.as_tensor(np.asarray(y))
        self.w = torch.as_tensor(weights, dtype=torch.float32)
        self.lam, self.steps, self.pretrain_epochs = lam, steps, pretrain_epochs
        self.signal_index, self.device = signal_index, device
        self._tot = 0.0
        self._n = 0

    def _loss(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor | None:
        d = self.device
        return adversary_loss(self.adversary, logits, self.y[idx].to(d), self.mass_bin[idx].to(d),
                              self.w[idx].to(d), self.signal_index)

    def _step(self, la: torch.Tensor) -> None:
        self.opt.zero_grad()
        la.backward()
        self.opt.step()

    def pretrain(self, model: torch.nn.Module, batches: Callable[[], Iterator[torch.Tensor]], Xt: torch.Tensor,
                 device: str) -> None:
        """Adversary epochs on the (fixed) initial classifier."""
        import torch

        for _ in range(self.pretrain_epochs):
            model.eval()
            for idx in batches():
                with torch.no_grad():
                    logits = model(Xt[idx].to(device))
                la = self._loss(logits, idx)
                if la is not None:
                    self._step(la)

    def before_step(self, logits: torch.Tensor, idx: torch.Tensor) -> None:
        """Adversary step(s) on the detached classifier output; the last one's loss is recorded
        (for any λ)."""
        logits_d = logits.detach()
        for step in range(self.steps):
            la = self._loss(logits_d, idx)
            if la is not None:
                self._step(la)
                if step == self.steps - 1:
                    self._tot += la.item()
                    self._n += 1

    def classifier_loss(self, l_clf: torch.Tensor, logits: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor,
                        idx: torch.Tensor) -> torch.Tensor:
        """``L_clf − λ·L_adv`` against the updated adversary, held fixed."""
        if self.lam == 0:
            return l_clf
        for p in self.adversary.parameters():
            p.requires_grad_(False)
        la = self._loss(logits, idx)
        for p in self.adversary.parameters():
            p.requires_grad_(True)
        return l_clf if la is None else l_clf - self.lam * la

    def epoch_figures(self) -> tuple[float | None, float | None]:
        out = (self._tot / self._n if self._n else None), None
        self._tot, self._n = 0.0, 0
        return out

    def validation_penalty(self, probs: np.ndarray, y: np.ndarray, w: np.ndarray, mass: np.ndarray) -> float:
        """λ × what the adversary learns of the background mass bins from the validation scores:
        ln K − min(L_adv, ln K) for K bins (its cross-entropy below a uniform guess, in nats).
        ``L_clf − λ·L_adv`` itself has no lower bound (an adversary pushed far off gives any
        value), so it cannot rank epochs; this information gain is ≥ 0 and 0 when the scores
        tell nothing of the mass."""
        import math

        import torch

        bkg = np.asarray(y) != self.signal_index
        if self.lam == 0 or not bkg.any():
            return 0.0
        p = np.clip(np.asarray(probs, np.float64)[bkg, self.signal_index], 1e-7, 1 - 1e-7)
        logit = torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32, device=self.device).unsqueeze(1)
        target = torch.as_tensor(np.searchsorted(self.bin_edges, np.asarray(mass)[bkg]), device=self.device)
        wb = torch.as_tensor(np.asarray(w)[bkg], dtype=torch.float32, device=self.device)
        with torch.no_grad():
            ce = torch.nn.functional.cross_entropy(self.adversary(logit), target, reduction="none")
            la = float((ce * wb).sum() / wb.sum())
        k = math.log(len(self.bin_edges) + 1)
        return self.lam * (k - min(la, k))

    def state_dict(self) -> dict[str, Any]:
        return {"adversary": self.adversary.state_dict(), "adversary_optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "adversary" in state:
            self.adversary.load_state_dict(state["adversary"])
            self.opt.load_state_dict(state["adversary_optimizer"])


class DiscoDecorrelation(Decorrelation):
    """``L_clf + λ·dCorr²(signal probability, mass)`` over each batch's background jets."""

    def __init__(self, mass: Any, *, lam: float, signal_index: int, device: str) -> None:
        import torch

        self.mass = torch.as_tensor(np.asarray(mass, dtype=np.float32))
        self.lam, self.signal_index, self.device = lam, signal_index, device
        self._tot = 0.0
        self._n = 0

    def classifier_loss(self, l_clf: torch.Tensor, logits: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor,
                        idx: torch.Tensor) -> torch.Tensor:
        import torch

        bkg = yb != self.signal_index
        if int(bkg.sum()) <= 2:
            return l_clf
        score = torch.softmax(logits, 1)[:, self.signal_index]
        pen = distance_correlation(score[bkg], self.mass[idx].to(self.device)[bkg], wb[bkg])
        self._tot += pen.item()
        self._n += 1
        return l_clf + self.lam * pen

    def epoch_figures(self) -> tuple[float | None, float | None]:
        out = None, (self._tot / self._n if self._n else None)
        self._tot, self._n = 0.0, 0
        return out

    #: validation background jets in the O(n²) distance correlation (every k-th, for memory)
    MAX_VALIDATION_JETS = 4000

    def validation_penalty(self, probs: np.ndarray, y: np.ndarray, w: np.ndarray, mass: np.ndarray) -> float:
        """λ·dCorr²(signal probability, mass) over the validation background jets."""
        import torch

        bkg = np.flatnonzero(np.asarray(y) != self.signal_index)
        if self.lam == 0 or len(bkg) <= 2:
            return 0.0
        bkg = bkg[:: max(1, len(bkg) // self.MAX_VALIDATION_JETS)]
        as_t = lambda a: torch.as_tensor(np.asarray(a, np.float64)[bkg])  # noqa: E731
        return self.lam * float(distance_correlation(as_t(probs[:, self.signal_index]), as_t(mass), as_t(w)))


def make_decorrelation(config: TrainConfig, y: Any, mass: Any, weights: Any, device: str,
                       adversary: torch.nn.Module | None = None) -> Decorrelation | None:
    """The decorrelation of ``config.decorrelate`` for the training set (``None``: none).

    Parameters
    ----------
    config : TrainConfig
    y, mass, weights : ndarray
        Training labels, jet masses (GeV) and per-example weights.
    device : str
    adversary : torch.nn.Module, optional
        For ``'adversary'``: the network to train (default :meth:`Adversary.build`), built after
        ``torch.manual_seed(config.seed + 1)``.
    """
    import torch

    if config.decorrelate == "adversary":
        torch.manual_seed(config.seed + 1)
        return AdversaryDecorrelation(adversary, mass, y, weights, lam=config.lam, n_bins=config.mass_bins,
                                      lr=config.adv_lr or config.lr, steps=config.adv_steps,
                                      pretrain_epochs=config.pretrain_adversary_epochs,
                                      signal_index=config.signal_index, device=device)
    if config.decorrelate == "disco":
        return DiscoDecorrelation(mass, lam=config.lam, signal_index=config.signal_index, device=device)
    return None
