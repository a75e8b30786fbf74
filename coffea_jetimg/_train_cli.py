"""Train a jet tagger on signal and background ROOT files and save it as a model artifact.

The files (generated with ``coffea-jetimg generate`` or real PFNano) are read with the same code
as the processor: coffea NanoEvents → jet constituents → the network input described by the
artifact's spec (jet image, constituent 4-vectors or jet features). Jets are selected (pT
window, |eta|, truth label), split 70/15/15 into train/validation/test with --seed, classes are
weighted to equal total weight, and the model is trained with Adam and early stopping on the
validation loss. The output directory receives model.ts (TorchScript), model.onnx, spec.json
(preprocessing spec, class names, training settings, test-set AUC, accuracy and background
rejection 1/eps_B at eps_S = 0.3 and 0.5), loss.png and auc.png, and checkpoint.pt (for
--resume).

Example:
  coffea-jetimg train --signal top.root --background qcd.root --model deeptop \\
      --pt-min 550 --pt-max 650 --epochs 20 -o artifacts/deeptop
"""

from __future__ import annotations

import argparse

from .models import ARCHITECTURES
from .selection import truth_help

__all__ = ["HELP", "MODELS", "add_arguments", "config_from_args", "main"]

HELP = "train a tagger (CNN, LoLa, dense, ResNet) on ROOT files and save a model artifact"

#: the --model choices: the model registry's architectures
MODELS = tuple(ARCHITECTURES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("inputs and labels")
    g.add_argument("--signal", nargs="+", required=True, metavar="FILE", help="ROOT files with signal jets (class 1)")
    g.add_argument("--background", nargs="+", required=True, metavar="FILE",
                   help="ROOT files with background jets (class 0)")
    g.add_argument("--jets", default="FatJet", help="jet collection to tag")
    g.add_argument("--allow-missing-event-ids", action="store_true",
                   help="read NanoAOD files without run/luminosityBlock/event (coffea refuses them by default)")
    g.add_argument("--label-from", choices=("file", "truth", "partonFlavour"), default="file",
                   help="'file': the class is the file list a jet came from (signal files need truthLabel == "
                        "--signal-truth, background files --background-truth, when the jets have truthLabel); "
                        "'truth': pool all files and label truthLabel == --signal-truth as signal; "
                        "'partonFlavour': pool all files, |flavour| 1-5 quark (signal), 21 gluon, others left out")
    g.add_argument("--signal-truth", type=int, default=1,
                   help=f"truthLabel of signal jets (generated files: {truth_help()}); -1 to not require one")
    g.add_argument("--background-truth", type=int, default=0,
                   help="truthLabel required of background-file jets; -1 to not require one")
    g.add_argument("--pt-min", type=float, default=None, help="keep jets with pt >= this (GeV)")
    g.add_argument("--pt-max", type=float, default=None, help="keep jets with pt < this (GeV)")
    g.add_argument("--abs-eta-max", type=float, default=2.0, help="keep jets with |eta| < this")
    g.add_argument("--msd-min", type=float, default=None, help="keep jets with soft-drop mass >= this (GeV)")
    g.add_argument("--msd-max", type=float, default=None, help="keep jets with soft-drop mass < this (GeV)")
    g.add_argument("--max-jets", type=int, default=None, help="at most this many jets per class")
    g.add_argument("--class-names", nargs=2, default=("qcd", "top"), metavar=("BACKGROUND", "SIGNAL"),
                   help="names of the background and signal classes stored in the artifact")
    m = parser.add_argument_group("model and network input")
    m.add_argument("--model", choices=MODELS, required=True,
                   help="architecture, with the input it takes (the model registry, coffea_jetimg.models): "
                        + ", ".join(f"{a} ({k})" for a, k in ARCHITECTURES.items())
                        + "; 'any' models take images with --image-preset, jet features with --features, else "
                          "4-vectors")
    m.add_argument("--image-preset", default=None,
                   help="jet-image preset (qg, deeptop, wtag, komiske); default: the one named like the model")
    m.add_argument("--channels", nargs="+", default=None, metavar="CHANNEL",
                   help="image channels instead of the preset's (see coffea_jetimg.images.CHANNELS), e.g. "
                        "'charged neutral' for colour images")
    m.add_argument("--normalize", choices=("sum", "sum_all", "none", "max"), default=None,
                   help="image normalisation instead of the preset's ('sum_all' keeps the channels' pT shares)")
    m.add_argument("--pixel-size", type=float, nargs=2, default=None, metavar=("ETA", "PHI"),
                   help="image pixel edges instead of the preset's (e.g. 0.05 0.05 for deeptop on R = 0.8 jets)")
    m.add_argument("--image-axis", choices=("constituents", "jet"), default=None,
                   help="image centring axis: the constituents' 4-vector sum (default) or the jets' stored "
                        "eta/phi ('jet'; they differ where a stored jet is not the sum of its stored candidates)")
    m.add_argument("--filters", type=int, default=None,
                   help="filters per convolution of the deeptop/qg/wtag CNNs (default: the paper's)")
    m.add_argument("--n-constituents", type=int, default=40,
                   help="constituents (pT-ordered, zero-padded) per jet for 4-vector and particle inputs")
    m.add_argument("--features", nargs="+", default=None,
                   help="jet features for fc/maxout, e.g. msoftdrop mass tau21 tau32")
    t = parser.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=20, help="maximum number of epochs")
    t.add_argument("--batch-size", type=int, default=128, help="mini-batch size")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument("--patience", type=int, default=5,
                   help="early stopping: epochs without a better validation --monitor (0: never)")
    t.add_argument("--monitor", choices=("loss", "auc"), default="loss",
                   help="what picks the kept weights, early stopping and --lr-decay: the lowest validation loss or "
                        "the highest validation AUC (better with dropout or decorrelation, whose loss can move "
                        "while the ranking of jets does not)")
    t.add_argument("--lr-decay", type=float, default=1.0,
                   help="multiply the learning rate by this after --lr-patience epochs without a better validation "
                        "--monitor (ReduceLROnPlateau; 1: constant)")
    t.add_argument("--lr-patience", type=int, default=2, help="epochs without improvement before --lr-decay applies")
    t.add_argument("--swa-start", type=int, default=None, metavar="EPOCH",
                   help="average the weights of every epoch from this one (0-based) on, at a constant learning "
                        "rate (stochastic weight averaging, arXiv:1803.05407); the averaged network is kept")
    t.add_argument("--swa-lr", type=float, default=None,
                   help="the constant learning rate while averaging (default: the rate in use at --swa-start)")
    t.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                   help="train/validation/test fractions")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the batches")
    t.add_argument("--device", default="auto", help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)")
    t.add_argument("--decorrelate", choices=("none", "adversary", "disco"), default="none",
                   help="mass decorrelation against the soft-drop mass: an adversary predicting the binned mass of "
                        "background jets from the classifier output (loss L_clf - lambda*L_adv), or a DisCo "
                        "distance-correlation penalty (L_clf + lambda*dCorr^2)")
    t.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="strength lambda of the decorrelation term (used with --decorrelate); default 10 for "
                        "adversary, 1 for disco")
    t.add_argument("--mass-bins", type=int, default=10, help="adversary: number of background-mass quantile bins")
    t.add_argument("--jes-smear", type=float, default=0.0,
                   help="'hardened' training: scale each training jet's constituent pT by 1 + X*N(0,1) "
                        "(e.g. 0.05 for 5%%)")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT/checkpoint.pt; refused, naming what changed, when the seed, the input "
                        "files, the model or any other setting but --epochs, --max-minutes, --device and --patience "
                        "differ from the run that wrote it")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="time budget of the epochs: stop before an epoch that would end past it, keeping the best "
                        "weights (--resume goes on later)")
    t.add_argument("--name", default=None, help="model name stored in spec.json")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", required=True, metavar="ARTIFACT_DIR", help="artifact directory to write")


def _image_overrides(args) -> dict | None:
    out = {k: v for k, v in (("channels", args.channels), ("normalize", args.normalize),
                             ("pixel_size", args.pixel_size), ("axis", args.image_axis)) if v is not None}
    return out or None


def _lambda(args) -> float:
    if args.decorrelate == "none":
        return 0.0
    if args.lam is not None:
        return args.lam
    return {"adversary": 10.0, "disco": 1.0}[args.decorrelate]


def config_from_args(args):
    """The :class:`~coffea_jetimg.training.TrainConfig` of the parsed ``train`` arguments."""
    from .training import TrainConfig

    pt_range = None
    if args.pt_min is not None or args.pt_max is not None:
        pt_range = (args.pt_min if args.pt_min is not None else 0.0,
                    args.pt_max if args.pt_max is not None else float("inf"))
    return TrainConfig(
        architecture=args.model, image_preset=args.image_preset, n_constituents=args.n_constituents,
        features=args.features, image_overrides=_image_overrides(args),
        model_kwargs={"filters": args.filters} if args.filters is not None else {},
        jets=args.jets, pt_range=pt_range, abs_eta_max=args.abs_eta_max,
        msd_range=None if args.msd_min is None and args.msd_max is None else (args.msd_min, args.msd_max),
        label_from=args.label_from,
        signal_truth=None if args.signal_truth < 0 else args.signal_truth,
        background_truth=None if args.background_truth < 0 else args.background_truth,
        max_jets_per_class=args.max_jets, class_names=tuple(args.class_names), split=tuple(args.split),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        patience=args.patience, lr_decay=args.lr_decay, lr_patience=args.lr_patience, monitor=args.monitor,
        swa_start=args.swa_start, swa_lr=args.swa_lr,
        decorrelate=None if args.decorrelate == "none" else args.decorrelate,
        lam=_lambda(args), mass_bins=args.mass_bins, jes_smear=args.jes_smear,
        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes, name=args.name,
        allow_missing_event_ids=args.allow_missing_event_ids,
    )


def main(args) -> int:
    import sys

    from .errors import JetImgError
    from .training import train_model

    from .inputs import ImageInput

    image_models = [a for a, kind in ARCHITECTURES.items() if kind == ImageInput.kind]
    cnn = args.model in image_models
    if args.filters is not None and (not cnn or args.filters < 1):
        print(f"coffea-jetimg train: error: --filters {args.filters} needs a CNN model ({', '.join(image_models)}) "
              f"and a positive count; --model is {args.model}", file=sys.stderr)
        return 2
    if _image_overrides(args) and ARCHITECTURES[args.model] not in (ImageInput.kind, "any"):
        print(f"coffea-jetimg train: error: --channels/--normalize/--pixel-size/--image-axis set jet-image "
              f"settings, but --model {args.model} does not take jet images here", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
        res = train_model(args.signal, args.background, output_dir=args.output, config=config, resume=args.resume,
                          progress=not args.no_progress)
    except (JetImgError, ValueError, KeyError) as err:
        print(f"coffea-jetimg train: error: {err}", file=sys.stderr)
        return 2
    m = res["metrics"]
    print(f"wrote {res['artifact']} (test AUC {m['auc']:.4f}, accuracy {m['accuracy']:.4f})")
    return 0
