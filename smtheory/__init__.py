"""smtheory — statistical-mechanics theory of a tractable transformer.

Implements the finite-width kernel theory of Tiberi, Mignacco, Irie & Sompolinsky
(NeurIPS 2024) with the conventions of ``docs/theory.md``.
"""
from .checks import InputError
from .precision import PrecisionWarning, enable_float64, float64_enabled
from .attention import AttentionLayer, attention_matrices, readout_vector
from .fast_weight_paths import fast_weight_path_features
from .fast_weights import effective_attention, fast_weight_scan
from .hypernetwork import code_kernel, hypernetwork_output, hypernetwork_weights, latent_codes, path_codes
from .kernels import gp_kernel, path_pair_kernels, renormalized_kernel, subnetwork_gp_u
from .mixing import available_rules, get_rule, mixing_matrices, register_rule
from .model import ModelSpec
from .network import effective_weights, forward, init_weights, path_form, sampled_order_parameters
from .paths import path_features, path_index, path_labels, scaled_path_features, subnetwork_paths
from .predictor import PredictorStats, kernel_task_alignment, predictor_moments, predictor_statistics
from .problem import KernelProblem

__version__ = "0.1.0"

__all__ = [
    "InputError", "PrecisionWarning", "enable_float64", "float64_enabled", "AttentionLayer", "attention_matrices", "readout_vector", "gp_kernel", "path_pair_kernels",
    "renormalized_kernel", "subnetwork_gp_u", "ModelSpec", "path_features", "path_index", "path_labels",
    "scaled_path_features", "subnetwork_paths", "PredictorStats", "kernel_task_alignment", "predictor_moments",
    "predictor_statistics", "KernelProblem", "effective_weights", "forward", "init_weights", "path_form",
    "sampled_order_parameters", "register_rule", "get_rule", "available_rules", "mixing_matrices",
    "fast_weight_scan", "effective_attention", "fast_weight_path_features", "latent_codes", "path_codes",
    "hypernetwork_weights", "hypernetwork_output", "code_kernel", "__version__",
]
