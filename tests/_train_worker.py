"""A small training run, started as a subprocess by the distribution tests.

    python tests/_train_worker.py --model sig --out weights.npz [options]

Trains SIG or GAN-SI (tiny MLPs on 2-D data) with `model.fit` under the
chosen strategy, with `enable_determinism(seed)`, and writes every variable
(model, optimizers, seed generators) to `--out` (`<out>.worker<i>.npz` under
a multi-worker strategy). The data order depends only on the epoch, so a
resumed run sees the same batches as an uninterrupted one.

Test hooks (environment variables, so that a restart can use the same
command line):
- `SIG_TEST_KILL_AT_STEP=k`: SIGKILL this process right after optimizer
  step k (counted over the whole run, resumed steps included).
"""

import argparse
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", choices=["sig", "gan_si", "gan_si_perm"], default="sig")
    p.add_argument("--strategy", default="default")
    p.add_argument("--logical-cpus", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=4, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backup-dir", default=None)
    p.add_argument("--save-freq", default="epoch")
    p.add_argument("--nan-at-batch", type=int, default=None,
                   help="global batch index whose data is NaN")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def build_model(kind, seed, gather_psi=True):
    """The compiled tiny SIG or GAN-SI model (call in the strategy scope)."""
    import keras

    from sig_keras.models import SIG
    from sig_keras.networks import mlp
    from sig_keras.networks import mlp_generator

    if kind == "sig":
        model = SIG(
            mlp_generator(4, 2, hidden_units=(16, 16)),
            "normal", latent_dim=4, num_samples=64, seed=seed, gather_psi=gather_psi,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model
    from sig_keras.models.gan import GAN

    discriminator = mlp(2, 1, hidden_units=(16,), name="discriminator")
    if kind == "gan_si_perm":
        # A seeded augmentation in the discriminator: its SeedGenerator state
        # is part of the training state too.
        from sig_keras.layers import RandomChannelPermutation

        discriminator = keras.Sequential(
            [keras.Input((2,)), RandomChannelPermutation(0.5, seed=seed), discriminator])
    model = GAN(
        mlp_generator(4, 2, hidden_units=(16, 16)),
        discriminator,
        latent_dim=4, sig_weight="auto", seed=seed,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-2),
        g_optimizer=keras.optimizers.Adam(1e-2),
    )
    return model


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
    import keras
    import numpy as np

    from sig_keras import distribute
    from sig_keras.callbacks import FaultTolerantBackup
    from sig_keras.callbacks import TerminateOnNonFinite

    strategy = distribute.get_strategy(args.strategy)
    distribute.enable_determinism(args.seed)

    # === Data: a fixed 2-D mixture in [-1, 1], same order every epoch ===
    rng = np.random.default_rng(1234)
    n = args.batches * args.batch_size
    centers = np.array([[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]], np.float32)
    x = centers[rng.integers(0, 3, n)] + 0.05 * rng.standard_normal((n, 2))
    x = np.clip(x, -0.99, 0.99).astype(np.float32)

    def batched(values):
        return tf.data.Dataset.from_tensor_slices(values).batch(
            args.batch_size, drop_remainder=True
        )

    dataset, steps = batched(x), None
    if args.nan_at_batch is not None:
        # Clean epochs, then one data point of batch `nan_at_batch` is NaN
        # (`fit` checks the first batch, so the first epoch must be clean).
        epoch, k = divmod(args.nan_at_batch, args.batches)
        if epoch < 1:
            raise ValueError("--nan-at-batch must be >= --batches")
        bad = x.copy()
        bad[k * args.batch_size] = np.nan
        dataset = batched(x).repeat(epoch).concatenate(batched(bad).repeat())
        steps = args.batches

    # === Model ===
    with strategy.scope():
        model = build_model(args.model, args.seed)
        distribute.build_optimizers(model, strategy)
    if args.nan_at_batch is not None:
        # The NaN data point is there to make the loss NaN and exercise
        # TerminateOnNonFinite; the data guard would stop the step before.
        model.data_guard = False

    callbacks = [TerminateOnNonFinite()]
    if args.backup_dir:
        save_freq = args.save_freq if args.save_freq == "epoch" else int(args.save_freq)
        callbacks.insert(0, FaultTolerantBackup(args.backup_dir, save_freq=save_freq))
    kill_at = os.environ.get("SIG_TEST_KILL_AT_STEP")
    if kill_at:
        class Kill(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if int(self.model.optimizer.iterations.numpy()) == int(kill_at):
                    print(f"KILLING at step {kill_at}", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(Kill())

    history = model.fit(
        dataset, epochs=args.epochs, steps_per_epoch=steps, callbacks=callbacks,
        verbose=0,
    )
    print("HISTORY", {k: [float(v) for v in vs] for k, vs in history.history.items()})
    for cb in callbacks:
        if isinstance(cb, TerminateOnNonFinite) and cb.message:
            print("STOPPED", cb.message, flush=True)

    # === Everything that makes up the training state ===
    state = {}
    for i, v in enumerate(model.variables):
        state[f"model/{i}/{v.path}"] = np.asarray(v.numpy())
    for attr, opt, _ in distribute.model_optimizers(model):
        for i, v in enumerate(opt.variables):
            state[f"{attr}/{i}/{v.path}"] = np.asarray(v.numpy())
    out = args.out
    if distribute.is_multi_worker(strategy):
        out = f"{out}.worker{distribute.worker_index(strategy)}.npz"
    np.savez(out, **state)
    print("DONE", out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
