"""SIG: the semi-implicit generator (Yin & Zhou), trained with `model.fit`."""

import keras
import tensorflow as tf

from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.losses.semi_implicit import semi_implicit_loss
from sig_keras.models.generative_model import GenerativeModel
from sig_keras.utils import validation


@keras.saving.register_keras_serializable(package="sig_keras")
class SIG(GenerativeModel):
    """Semi-implicit generator: `eps ~ N(0, I)`, `psi = T(eps)`, `x ~ p(x | psi)`.

    Each training step draws `num_samples` noise vectors from the model's
    `SeedGenerator`, maps them to `psi_k = generator(eps_k)` and minimizes the
    semi-implicit loss (Lemma 1) on the data batch:

        L_hat = - (1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ]

    Under a distribution strategy the estimate and its gradient equal the
    single-device ones on the same global batch: every replica draws the same
    `K` noise vectors and either generates its share of `psi` and all-gathers
    them (`gather_psi=True`), or generates all `K` itself (`gather_psi=False`).

    Reference: Yin & Zhou, "Semi-Implicit Generative Model".

    Args:
        generator: `keras.Model`. Maps `[n, latent_dim]` noise to `[n, *param_shape]`
            conditional parameters (see `conditional.param_shape`).
        conditional: `sig_keras.layers.Conditional` or its name. The explicit
            `p(x | psi)`.
        latent_dim: int or None. Width of the noise `eps`. None reads it from
            the generator's input. Defaults to None.
        num_samples: int. `K`, the number of generated `psi` per step (global,
            across replicas). Larger is a tighter bound. The `[K, latent_dim]`
            noise and the `K` generator outputs must each have at most
            `sig_keras.utils.validation.MAX_ELEMENTS` (2^31 - 1) elements.
            Defaults to 1000.
        seed: int or None. Seed of the model's `SeedGenerator`.
        gather_psi: bool. Only matters with several replicas. True splits the
            generator's work across replicas and all-gathers `psi` (`K x P`
            floats per step, and the same back); False repeats the generator
            on all `K` noise vectors on every replica (R times the generator
            work, no communication for `psi`), for generators cheaper than a
            collective's latency (e.g. across slow links); measure it for
            your setup (`benchmarks/strategy_overhead.py`, figures in
            docs/benchmarks.md). Defaults to True.

    Example:
    >>> gen = sig_keras.networks.mlp_generator(latent_dim=10, output_dim=2)
    >>> model = SIG(gen, NormalConditional(0.1), latent_dim=10, num_samples=256)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    _objective = "the semi-implicit loss"
    _sub_models = ("generator", "conditional")
    _samples_from_conditional = True

    def __init__(
        self,
        generator,
        conditional="normal",
        latent_dim=None,
        num_samples=1000,
        seed=None,
        gather_psi=True,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        # === Config ===
        self.latent_dim = self._check_generator(generator, latent_dim)
        self.num_samples = validation.check_int(num_samples, "num_samples", minimum=1)
        self.gather_psi = validation.check_choice(gather_psi, "gather_psi", (True, False))
        # === Layers ===
        self.generator = generator
        self.conditional = conditionals_lib.get(conditional)
        # Each step draws `num_samples` noise vectors and psi at once.
        self._check_draw_count(self.num_samples, "num_samples")
        # === Trackers ===
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    # === Training ===

    def _loss(self, x, training):
        """This replica's share of the semi-implicit loss on `x`."""
        if self.gather_psi:
            noise = self.draw_replica_noise(self.num_samples)
        else:
            noise = self.draw_noise(self.num_samples)
        psi = self.generator(noise, training=training)
        return semi_implicit_loss(
            x, psi, self.conditional, psi_replicated=not self.gather_psi
        )

    def train_step(self, data):
        x = self.data_batch(data)
        with tf.GradientTape() as tape:
            loss = self._loss(x, training=True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self._report((self.loss_tracker, loss))
        return self.metric_logs()

    def test_step(self, data):
        x = self.data_batch(data)
        self._report((self.loss_tracker, self._loss(x, training=False)))
        return self.metric_logs()

    # === Sampling ===

    def sample_mixing(self, n, seed=None):
        """Draws `n` mixing parameters `psi = generator(eps)`.

        Args:
            n: int. Number of draws (checked as in `sample`).
            seed: int or None. An int gives the same draws every time; None
                advances the model's `SeedGenerator`.
        """
        n = self._check_draw_count(n, hint=" Draw psi in batches.")
        if seed is not None:
            seed = validation.check_int(seed, "seed")
        return self.generator(self.draw_noise(n, seed), training=False)

    def sample_mean(self, n, seed=None):
        """`E[x | psi]` of `n` mixing draws: the conditional's mean at each
        `psi` of `sample_mixing(n, seed)` (Bernoulli: the pixel probabilities
        `sigmoid(psi)`, the images a digit model is usually shown by).

        Args:
            n: int. Number of draws (checked as in `sample`).
            seed: int or None. As in `sample_mixing`.
        """
        return self.conditional.mean(self.sample_mixing(n, seed))

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update({"num_samples": self.num_samples, "gather_psi": self.gather_psi})
        return config
