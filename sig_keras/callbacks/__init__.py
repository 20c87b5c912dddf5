"""Keras callbacks: scale annealing, learning-rate cool-down, SIG weight schedule, summaries, sample evaluation and fault tolerance."""

from sig_keras.callbacks.scale_annealing import ScaleAnnealing
from sig_keras.callbacks.cooldown import LinearCooldown
from sig_keras.callbacks.sig_weight_schedule import SigWeightSchedule
from sig_keras.callbacks.fault_tolerance import FaultTolerantBackup
from sig_keras.callbacks.fault_tolerance import TerminateOnNonFinite
from sig_keras.callbacks.image_summary import ImageSummary
from sig_keras.callbacks.sample_evaluation import SampleEvaluation
