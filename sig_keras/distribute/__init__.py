"""Distribution: strategies and `TF_CONFIG`, cross-replica reduction, host tuning, determinism.

Every model of the package trains under `tf.distribute.MirroredStrategy` (one
machine, several devices) and `tf.distribute.MultiWorkerMirroredStrategy`
(several machines, each started with its own `TF_CONFIG`) with the same result
as one device on the same global batch:

- losses return each replica's share of the global-batch mean
  (`sig_keras.distribute.reduction`), so the summed gradients equal the
  single-device gradient;
- the semi-implicit term all-gathers the generated `psi` (K x P floats), so
  every data point sees all `K` samples whatever the replica count;
- noise is drawn identically on every replica from the mirrored
  `SeedGenerator` and each replica keeps its slice.

Example:
>>> strategy = sig_keras.distribute.get_strategy("mirrored")
>>> with strategy.scope():
...     model = SIG(mlp_generator(10, 2), "normal")
...     model.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> model.fit(dataset, epochs=10)  # builds the model and its optimizers in scope
"""

from sig_keras.distribute import reduction
from sig_keras.distribute.determinism import enable_determinism
from sig_keras.distribute.host import set_malloc_top_pad
from sig_keras.distribute.strategy import STRATEGIES
from sig_keras.distribute.strategy import build_optimizers
from sig_keras.distribute.strategy import get_strategy
from sig_keras.distribute.strategy import is_multi_worker
from sig_keras.distribute.strategy import model_optimizers
from sig_keras.distribute.strategy import parse_tf_config
from sig_keras.distribute.strategy import worker_index
