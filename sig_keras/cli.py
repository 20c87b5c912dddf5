"""The `sig-keras` command (also `python -m sig_keras`): use the presets.

    sig-keras presets                                   # table of built-in presets
    sig-keras sample NAME --num N --seed S --out FILE   # .png picture or .npy samples
    sig-keras evaluate NAME [--num N] [--seed S]        # metrics beside the stored ones
    sig-keras export NAME DIR                           # a SavedModel (model.export)

NAME is a built-in preset name or a preset directory. Bad input (an unknown
name, a bad number, an unwritable path, a corrupt or partial preset) prints
`sig-keras: error: ...` naming the problem and exits with a non-zero code
(2 for malformed flags, 1 for everything else), without a traceback.
"""

import argparse
import os
import sys

PNG, NPY = ".png", ".npy"


class CommandError(Exception):
    """A problem with the command's input, reported as one line, exit code 1."""


def _positive_int(flag):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer; got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be >= 1; got {value}")
        return value
    return parse


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer; got {text!r}") from None
    if not 0 <= value < 2**31 - 1:
        raise argparse.ArgumentTypeError(f"--seed must be in [0, 2^31 - 2]; got {value}")
    return value


def build_parser():
    p = argparse.ArgumentParser(prog="sig-keras",
                                description="Sample, evaluate and export sig_keras presets.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("presets", help="list the built-in presets")
    s = sub.add_parser("sample", help="draw samples: a .png picture or .npy array "
                       "(digit models with a Bernoulli conditional: pixel probabilities)")
    s.add_argument("name", help="built-in preset name or preset directory")
    s.add_argument("--num", type=_positive_int("--num"), default=5000)
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--out", required=True, help="output file, .png or .npy")
    e = sub.add_parser("evaluate", help="re-measure a preset's metrics from fresh samples")
    e.add_argument("name", help="built-in preset name or preset directory")
    e.add_argument("--num", type=_positive_int("--num"), default=None,
                   help="samples (default: the stored count)")
    e.add_argument("--seed", type=_seed, default=None,
                   help="sampling seed (default: the stored seed)")
    x = sub.add_parser("export", help="write a SavedModel (model.export)")
    x.add_argument("name", help="built-in preset name or preset directory")
    x.add_argument("directory", help="SavedModel directory to write")
    return p


# === Helpers ===


def _writable_file(path, extensions):
    ext = os.path.splitext(path)[1].lower()
    if ext not in extensions:
        raise CommandError(f"--out {path!r}: the file must end in one of {', '.join(extensions)}")
    if os.path.isdir(path):
        raise CommandError(f"--out {path!r} is a directory, not a file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"--out {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CommandError(f"--out {path!r} is not writable")
    return ext


def _writable_directory(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise CommandError(f"{path!r} exists and is not a directory")
    if os.path.isdir(path) and os.listdir(path):
        raise CommandError(f"{path!r} exists and is not empty")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"{path!r}: directory {parent!r} is not writable")


def _is_classifier(metadata):
    return metadata.get("kind") == "classifier"


def _load_generative(name, metadata):
    from sig_keras.models import GenerativeModel

    if _is_classifier(metadata):
        raise CommandError(
            f"preset {name!r} is a digit classifier, not a generative model: it has no "
            "samples (load it with sig_keras.presets.load)"
        )
    return GenerativeModel.from_preset(name)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _headline(metadata):
    values = metadata.get("metrics", {}).get("values", {})
    keys = [k for k in ("modes", "high_quality", "kl", "tv", "heldout_accuracy", "digit_kl")
            if k in values]
    return ", ".join(f"{k} {_fmt(values[k])}" for k in keys)


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# === Commands ===


def cmd_presets(args, out):
    from sig_keras import presets
    from sig_keras.presets import evaluation

    rows = []
    for name, meta in presets.list_presets().items():
        data = meta.get("data", {})
        rows.append([name, meta.get("class_name", "?"),
                     evaluation.describe(data) if isinstance(data, dict) else str(data),
                     _headline(meta)])
    print(_table(["name", "model", "data", "metrics"], rows), file=out)


def _plot(samples, metadata, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sig_keras.presets import evaluation
    from sig_keras.utils import save_image_grid

    data = metadata.get("data", {})
    try:
        kind = evaluation.data_kind(data)
    except ValueError:
        kind = None
    flat = samples.reshape(len(samples), -1)
    side = int(round(np.sqrt(flat.shape[1])))
    if samples.ndim == 4 or kind == "digits" or (flat.shape[1] > 16 and side**2 == flat.shape[1]):
        # [N, H, W, C] images, or flat square ones ([N, 784] digits: 28 x 28 x 1).
        images = samples if samples.ndim == 4 else flat.reshape(len(samples), side, side, 1)
        low = 0.0 if images.min() >= 0.0 else -1.0
        save_image_grid(path, images[:64], data_range=(low, 1.0))
        return
    fig, ax = plt.subplots(figsize=(5, 5))
    if kind == "counts":
        spec = evaluation.toy(data)
        counts = np.rint(flat[:, 0]).astype(int)
        top = int(max(15, np.percentile(counts, 99.9)))
        support = np.arange(top + 1)
        empirical = np.bincount(np.clip(counts, 0, top + 1), minlength=top + 2)[:top + 1]
        ax.bar(support - 0.2, spec.pmf(support), width=0.4, label="target")
        ax.bar(support + 0.2, empirical / len(counts), width=0.4, label="samples")
        ax.set_xlabel("count")
        ax.set_ylabel("probability")
        ax.legend()
    elif flat.shape[1] == 2:
        ax.scatter(flat[:, 0], flat[:, 1], s=1, alpha=0.2)
        if kind == "grid":
            spec = evaluation.toy(data)
            ax.scatter(spec.centers[:, 0], spec.centers[:, 1], s=10, c="red", marker="x")
            ax.set_xlim(-6, 6)
            ax.set_ylim(-6, 6)
        ax.set_aspect("equal")
    elif flat.shape[1] == 1:
        ax.hist(flat[:, 0], bins=100)
    else:
        plt.close(fig)
        raise CommandError(f"no picture for {flat.shape[1]}-d samples; use a .npy file")
    ax.set_title(f"{metadata.get('name', '')} {len(samples)} samples".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cmd_sample(args, out):
    import numpy as np

    from sig_keras import presets

    ext = _writable_file(args.out, (PNG, NPY))
    metadata = presets.load_metadata(args.name)
    model = _load_generative(args.name, metadata)
    from sig_keras.presets import evaluation

    samples = evaluation.draw(model, args.num, args.seed, metadata.get("data"))
    if ext == NPY:
        np.save(args.out, samples)
    else:
        _plot(samples, dict(metadata, name=os.path.basename(os.path.normpath(args.name))),
              args.out)
    print(f"wrote {args.out} ({args.num} samples, seed {args.seed})", file=out)


def evaluate(name, num=None, seed=None):
    """`(rows, stored block)`: each metric's stored value, fresh value and
    whether it is within the stored spread (None where no spread applies)."""
    from sig_keras import presets
    from sig_keras.presets import evaluation

    metadata = presets.load_metadata(name)
    stored = metadata.get("metrics")
    if not isinstance(stored, dict) or not isinstance(stored.get("values"), dict):
        raise CommandError(f"preset {name!r} has no stored metrics in its metadata.json")
    num = stored.get("num_samples") if num is None else num
    seed = stored.get("seed", 0) if seed is None else seed
    if _is_classifier(metadata):
        fresh = {"heldout_accuracy": heldout_accuracy(presets.load(name), metadata["data"])}
    else:
        model = _load_generative(name, metadata)
        fresh = evaluation.measure(model, metadata.get("data"), num, seed)
    spread = stored.get("spread")
    same_count = num == stored.get("num_samples")
    rows = []
    for key, value in fresh.items():
        within = None
        if spread and same_count and key in spread.get("metrics", {}):
            within = evaluation.within_spread(key, value, spread)
        rows.append((key, stored["values"].get(key), value, within))
    return rows, dict(stored, fresh_num_samples=num, fresh_seed=seed)


def heldout_accuracy(classifier, data):
    """Accuracy of a digit classifier on the held-out digits its metadata names."""
    import numpy as np

    from sig_keras import datasets

    images, labels = datasets.mnist_digits(data["source"], "train")
    _, (x, y) = datasets.heldout_split(images, labels, data["holdout"],
                                       seed=data["holdout_seed"])
    x = x.astype(np.float32) / 127.5 - 1.0
    probs = classifier.predict(x, batch_size=500, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def cmd_evaluate(args, out):
    rows, stored = evaluate(args.name, args.num, args.seed)
    spread = stored.get("spread") or {}
    table = []
    for key, old, new, within in rows:
        s = spread.get("metrics", {}).get(key)
        table.append([key, _fmt(old) if old is not None else "-", _fmt(new),
                      f"{_fmt(s['mean'])} +- {_fmt(s['std'])}" if s else "-",
                      {True: "yes", False: "NO", None: "-"}[within]])
    print(f"{args.name}: stored on {stored.get('num_samples')} samples, seed "
          f"{stored.get('seed')}; fresh on {stored['fresh_num_samples']} samples, seed "
          f"{stored['fresh_seed']}", file=out)
    print(_table(["metric", "stored", "fresh", "spread (mean +- std)", "within"], table),
          file=out)


def cmd_export(args, out):
    from sig_keras import presets

    _writable_directory(args.directory)
    model = _load_generative(args.name, presets.load_metadata(args.name))
    model.export(args.directory, verbose=False)
    print(f"wrote SavedModel {args.directory} (endpoints serve(noise, seed), "
          "generate(noise))", file=out)


COMMANDS = {"presets": cmd_presets, "sample": cmd_sample, "evaluate": cmd_evaluate,
            "export": cmd_export}


def main(argv=None, out=None):
    """Runs the command; returns the exit code (0 on success)."""
    out = sys.stdout if out is None else out
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its usage error
        return int(e.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        COMMANDS[args.command](args, out)
    except (CommandError, ValueError, OSError) as e:
        print(f"sig-keras: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else still gets one line, not a traceback
        print(f"sig-keras: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def console_main():
    sys.exit(main())
