"""SIG: the semi-implicit generator (Yin & Zhou), trained with `model.fit`."""

import keras
import tensorflow as tf

from sig_keras.layers import conditionals as conditionals_lib
from sig_keras.losses import reduction
from sig_keras.losses.semi_implicit import semi_implicit_loss
from sig_keras.models.generative_model import GenerativeModel


@keras.saving.register_keras_serializable(package="sig_keras")
class SIG(GenerativeModel):
    """Semi-implicit generator: `eps ~ N(0, I)`, `psi = T(eps)`, `x ~ p(x | psi)`.

    Each training step draws `num_samples` noise vectors from the model's
    `SeedGenerator`, maps them to `psi_k = generator(eps_k)` and minimizes the
    semi-implicit loss (Lemma 1) on the data batch:

        L_hat = - (1/N) sum_i [ logsumexp_k log p(x_i | psi_k) - log K ]

    Under a distribution strategy the `K` samples are split across replicas
    and gathered, so the estimate equals the single-device one on the same
    global batch.

    Reference: Yin & Zhou, "Semi-Implicit Generative Model".

    Args:
        generator: `keras.Model`. Maps `[n, noise_dim]` noise to `[n, *param_shape]`
            conditional parameters (see `conditional.param_shape`).
        conditional: `sig_keras.layers.Conditional` or its name. The explicit
            `p(x | psi)`.
        noise_dim: int. Width of the noise `eps`.
        num_samples: int. `K`, the number of generated `psi` per step (global,
            across replicas). Larger is a tighter bound. Defaults to 1000.
        seed: int or None. Seed of the model's `SeedGenerator`.

    Example:
    >>> gen = sig_keras.models.mlp_generator(noise_dim=10, output_dim=2)
    >>> model = SIG(gen, NormalConditional(0.1), noise_dim=10, num_samples=256)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(dataset, steps_per_epoch=100)
    >>> x = model.sample(1000, seed=0)
    """

    _objective = "the semi-implicit loss"

    def __init__(
        self,
        generator,
        conditional="normal",
        noise_dim=10,
        num_samples=1000,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.noise_dim = self._check_generator(generator, noise_dim)
        self.num_samples = int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"`num_samples` must be >= 1; got {num_samples}.")
        self.seed = seed
        # === Layers ===
        self.generator = generator
        self.conditional = conditionals_lib.get(conditional)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # === Trackers ===
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    # === Training ===

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        noise = self.draw_replica_noise(self.num_samples)
        with tf.GradientTape() as tape:
            psi = self.generator(noise, training=True)
            loss = semi_implicit_loss(x, psi, self.conditional)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.loss_tracker.update_state(reduction.report_value(loss))
        return self.metric_logs()

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        noise = self.draw_replica_noise(self.num_samples)
        psi = self.generator(noise, training=False)
        loss = semi_implicit_loss(x, psi, self.conditional)
        self.loss_tracker.update_state(reduction.report_value(loss))
        return self.metric_logs()

    # === Sampling ===

    def sample_mixing(self, n, seed=None):
        """Draws `n` mixing parameters `psi = generator(eps)`."""
        return self.generator(self.draw_noise(int(n), seed), training=False)

    def _samples_from_noise(self, noise, seed):
        psi = self.generator(noise, training=False)
        return self.conditional.sample(psi, seed)

    # === Validation ===

    def check_data(self, x, name="data"):
        self.conditional.check_data(x, name)

    def check_data_shape(self, event_shape, name="data"):
        self._check_conditional_output(event_shape, "generator", name)

    # === Config ===

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "conditional": keras.saving.serialize_keras_object(self.conditional),
                "noise_dim": self.noise_dim,
                "num_samples": self.num_samples,
                "seed": self.seed,
            }
        )
        return config
