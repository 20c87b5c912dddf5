"""sig_keras.utils.validation: argument checks and the in-graph data guard."""

import os

import numpy as np
import pytest
import tensorflow as tf

from sig_keras.utils import validation


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3)])
def test_check_int_accepts_integers(value):
    assert validation.check_int(value, "n", minimum=1) == 3
    assert type(validation.check_int(value, "n")) is int


@pytest.mark.parametrize("value", [True, False, 2.5, 2.0, "3", None, np.float32(2.0), [3]])
def test_check_int_rejects_non_integers(value):
    with pytest.raises(ValueError, match="`n` must be an integer; got"):
        validation.check_int(value, "n")
    with pytest.raises(ValueError, match="`n` must be a positive integer; got"):
        validation.check_int(value, "n", minimum=1)


@pytest.mark.parametrize("value,kwargs,requirement", [
    (0, dict(minimum=1), "a positive integer"),
    (-1, dict(minimum=0), "a non-negative integer"),
    (11, dict(maximum=10), r"an integer in \[-inf, 10\]"),
    (-5, dict(minimum=0, maximum=3), r"an integer in \[0, 3\]")])
def test_check_int_range(value, kwargs, requirement):
    with pytest.raises(ValueError, match=f"`n` must be {requirement}; got {value}"):
        validation.check_int(value, "n", **kwargs)


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.array(0.5)])
def test_check_float_accepts_reals(value):
    assert validation.check_float(value, "w", minimum=0.0) == pytest.approx(float(value))


@pytest.mark.parametrize("value", [True, "0.5", None, [0.5], np.array([0.5])])
def test_check_float_rejects_non_reals(value):
    with pytest.raises(ValueError, match="`w` must be a real number"):
        validation.check_float(value, "w")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_check_float_rejects_non_finite(value):
    with pytest.raises(ValueError, match="`w` must be finite"):
        validation.check_float(value, "w")


def test_check_float_open_and_closed_bounds():
    assert validation.check_float(0.0, "w", minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"`w` must be in \(0, inf\); got 0"):
        validation.check_float(0.0, "w", minimum=0.0, min_inclusive=False)
    with pytest.raises(ValueError, match=r"`w` must be in \[0, 1\); got 1"):
        validation.check_float(1.0, "w", minimum=0.0, maximum=1.0, max_inclusive=False)
    with pytest.raises(ValueError, match=r"must be in \[1e-06, 1e\+06\]; got 1e-30"):
        validation.check_float(1e-30, "w", minimum=validation.MIN_SCALE,
                               maximum=validation.MAX_SCALE)


def test_check_choice():
    assert validation.check_choice("auto", "mode", ("auto", "max")) == "auto"
    for bad in ("Auto", None, 1):
        with pytest.raises(ValueError, match=r"`mode` must be one of \['auto', 'max'\]"):
            validation.check_choice(bad, "mode", ("auto", "max"))


def test_check_writable_directory(tmp_path):
    target = tmp_path / "a" / "b"
    assert validation.check_writable_directory(str(target), "log_dir") == str(target)
    assert target.is_dir() and os.listdir(target) == []  # the probe file is gone
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="`log_dir` .* exists and is not a directory"):
        validation.check_writable_directory(str(afile), "log_dir")
    with pytest.raises(ValueError, match="does not exist"):
        validation.check_writable_directory(str(tmp_path / "missing"), "log_dir", create=False)
    assert validation.check_writable_directory("gs://bucket/x") == "gs://bucket/x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_writable_directory_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="is not writable"):
            validation.check_writable_directory(str(ro), "backup_dir")
    finally:
        ro.chmod(0o700)


def _checks(x):
    return [("finite values", ~tf.math.is_finite(x)),
            ("non-negative values", x < 0)]


def test_assert_all_eager_names_requirement_value_and_step():
    x = tf.constant([[1.0, 2.0], [-3.0, 4.0]])
    with pytest.raises(ValueError, match=r"non-negative values at step 7: found -3\.0 "
                                         r"\(1 offending"):
        validation.assert_all(x, _checks(x), step=tf.constant(7))
    ok = tf.constant([[1.0, 2.0]])
    assert validation.assert_all(ok, _checks(ok)) is ok


@pytest.mark.parametrize("bad_value,requirement", [(float("nan"), "finite values"),
                                                   (-1.0, "non-negative values")])
def test_assert_all_graph_raises_before_dependents(bad_value, requirement):
    weight = tf.Variable(0.0)

    @tf.function
    def step(x):
        x = validation.assert_all(x, _checks(x), step=tf.constant(3, tf.int64))
        weight.assign_add(tf.reduce_sum(x))  # stands for the weight update
        return weight

    assert float(step(tf.constant([1.0, 2.0]))) == 3.0
    with pytest.raises(tf.errors.InvalidArgumentError, match=requirement) as info:
        step(tf.constant([1.0, bad_value]))
    assert "at step" in str(info.value)
    assert float(weight.numpy()) == 3.0  # the failing step did not touch it


# === Every public entry point that takes these options uses the module ===


def _bad_option_cases():
    from sig_keras import callbacks
    from sig_keras import datasets

    grid = datasets.gaussian_grid(0.1)
    return [
        (lambda: datasets.gaussian_grid(std=float("nan")), "`std` must be finite"),
        (lambda: datasets.gaussian_grid(std=True), "`std` must be a real number"),
        (lambda: datasets.gaussian_grid(size=2.5), "`size` must be a positive integer"),
        (lambda: datasets.gaussian_ring(num_modes=0), "`num_modes` must be a positive integer"),
        (lambda: datasets.negative_binomial(probs=1.0), r"`probs` must be in \(0, 1\)"),
        (lambda: datasets.poisson_nb_mixture(rate=-1.0), r"`rate` must be in \(0, inf\)"),
        (lambda: datasets.make_dataset(grid, 2.5), "`batch_size` must be a positive integer"),
        (lambda: datasets.make_dataset(grid, 8, seed=2.7), "`seed` must be an integer"),
        (lambda: datasets.make_dataset(grid, 8, num_examples=True),
         "`num_examples` must be a positive integer"),
        (lambda: callbacks.ScaleAnnealing(start=1e-30), r"`start` must be in \[1e-06"),
        (lambda: callbacks.ScaleAnnealing(end=float("inf")), "`end` must be finite"),
        (lambda: callbacks.ScaleAnnealing(steps=10.5), "`steps` must be a positive integer"),
        (lambda: callbacks.ImageSummary("/tmp/x", every_n_steps=True),
         "`every_n_steps` must be a positive integer"),
        (lambda: callbacks.ImageSummary("/tmp/x", seed=0.5), "`seed` must be an integer"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_public_options_are_validated(case):
    make, message = _bad_option_cases()[case]
    with pytest.raises(ValueError, match=message):
        make()


# === Conditionals: options in range, data requirements in graph and eager ===


@pytest.mark.parametrize("make,message", [
    (lambda: __import__("sig_keras").layers.NormalConditional(1e-30), r"`scale` must be in \[1e-06"),
    (lambda: __import__("sig_keras").layers.NormalConditional(True), "`scale` must be a real number"),
    (lambda: __import__("sig_keras").layers.PoissonConditional(min_rate=-1), r"`min_rate` must be in \[0"),
    (lambda: __import__("sig_keras").layers.NegativeBinomialConditional(min_total_count=float("nan")),
     "`min_total_count` must be finite"),
])
def test_conditional_options_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_normal_scale_bounds_stay_finite():
    """At both ends of the accepted scale range the pairwise matrix is finite."""
    from sig_keras import layers

    big = validation.MAX_DATA_MAGNITUDE
    x = tf.constant([[big, -big], [0.0, 1.0]])
    psi = tf.constant([[0.0, 0.0], [-big, big], [0.5, 0.5]])
    for scale in (validation.MIN_SCALE, validation.MAX_SCALE):
        m = layers.NormalConditional(scale).pairwise_log_prob(x, psi)
        assert bool(tf.reduce_all(tf.math.is_finite(m))), scale


@pytest.mark.parametrize("name,data,requirement", [
    ("normal", [[0.0, 2e12]], "magnitudes at most"),
    ("normal", [[0.0, float("nan")]], "finite values"),
    ("poisson", [[1.0], [-2.0]], "non-negative counts"),
    ("negative_binomial", [[1.5]], "integer counts"),
    ("bernoulli", [[0.0], [0.3]], "binary values"),
])
def test_data_requirements_in_graph(name, data, requirement):
    from sig_keras import layers

    cond = layers.get(name)
    x = tf.constant(data, tf.float32)

    @tf.function
    def guard(x):
        return validation.assert_all(x, cond.data_requirements(x), step=tf.constant(4))

    with pytest.raises(tf.errors.InvalidArgumentError, match=requirement):
        guard(x)
    good = tf.ones_like(x)
    np.testing.assert_array_equal(guard(good).numpy(), good.numpy())


# === Metrics: options through the same module ===


@pytest.mark.parametrize("make,message", [
    (lambda m: m.KernelDistance(feature_extractor="identity", num_features=2, subsets=2.5),
     "`subsets` must be a positive integer"),
    (lambda m: m.KernelDistance(feature_extractor="identity", num_features=2, seed=True),
     "`seed` must be an integer"),
    (lambda m: m.PrecisionRecall(feature_extractor="identity", num_features=2, k=0),
     "`k` must be a positive integer"),
    (lambda m: m.InceptionScore(classifier=None, splits=2.5), "`splits` must be a positive integer"),
    (lambda m: m.InceptionScore(classifier=None, from_logits="yes"), "`from_logits` must be one of"),
    (lambda m: m.ModeCoverage([[0.0, 0.0]], std=float("nan")), "`std` must be finite"),
    (lambda m: m.ModeCoverage([[0.0, 0.0]], std=0.1, capture_share=1.0),
     r"`capture_share` must be in \[0, 1\)"),
])
def test_metric_options_are_validated(make, message):
    from sig_keras import metrics

    with pytest.raises(ValueError, match=message):
        make(metrics)


# === Models: options and sample() arguments ===


def _model_cases():
    from sig_keras.models import GAN
    from sig_keras.models import SIG
    from sig_keras.models import VAE
    from sig_keras.models import WGANGP
    from tests import harness

    def gan(**kwargs):
        return GAN(harness.tiny_image_generator(), harness.tiny_image_discriminator(),
                   latent_dim=harness.IMAGE_LATENT, **kwargs)

    def wgan(**kwargs):
        return WGANGP(harness.tiny_image_generator(), harness.tiny_image_discriminator(),
                      latent_dim=harness.IMAGE_LATENT, **kwargs)

    def sig(**kwargs):
        from sig_keras.networks import mlp_generator
        return SIG(mlp_generator(3, 2, hidden_units=(4,)), "normal", latent_dim=3, **kwargs)

    def vae(**kwargs):
        from sig_keras.networks import mlp_encoder, mlp_generator
        return VAE(mlp_encoder(2, 4, hidden_units=(4,)), mlp_generator(2, 2, hidden_units=(4,)),
                   latent_dim=2, **kwargs)

    return [
        (lambda: gan(sig_weight=1e30), "`sig_weight` must be 'auto' or a non-negative number"),
        (lambda: gan(sig_weight=True), "`sig_weight` must be 'auto' or a non-negative number"),
        (lambda: gan(auto_sig_scale=float("inf")), "`auto_sig_scale` must be finite"),
        (lambda: wgan(gradient_penalty_weight=float("inf")), "`gradient_penalty_weight` must be finite"),
        (lambda: wgan(critic_steps=2.0), "`critic_steps` must be a positive integer"),
        (lambda: sig(num_samples=2.5), "`num_samples` must be a positive integer"),
        (lambda: sig(seed=2.7), "`seed` must be an integer"),
        (lambda: sig(gather_psi=1), "`gather_psi` must be one of"),
        (lambda: sig().sample(2.5), "`n` must be a positive integer"),
        (lambda: sig().sample(4, seed=1.5), "`seed` must be an integer"),
        (lambda: vae(kl_weight=0.0), r"`kl_weight` must be in \(0, 1e\+06\]"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_model_options_are_validated(case):
    make, message = _model_cases()[case]
    with pytest.raises(ValueError, match=message):
        make()
