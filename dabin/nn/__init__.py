"""Normalization layers and helpers: BIN (eq. 3), the normalization lab (IBN-Net, Switchable Norm, TransNorm,
MixStyle, domain-specific BIN), the norm switch, gate training, gradient reversal, synchronized BIN."""

from dabin.nn import compiled
from dabin.nn.bin import BatchInstanceNorm1d, BatchInstanceNorm2d, BatchInstanceNorm3d
from dabin.nn.domain_stats import TARGET_GATE, add_domain_stats, target_gates, target_stats
from dabin.nn.convert import NORM_SPECS, NORMS, DomainNeed, NormName, NormSpec, check_norm, convert_layer, convert_norm, norm_layer
from dabin.nn.ibn import IBN, official_ibn_state_dict
from dabin.nn.mixstyle import MixStyle, insert_mixstyle, mixstyle_disabled
from dabin.nn.switchable import SwitchNorm2d
from dabin.nn.transnorm import TransNorm2d, domain_split, eval_statistics
from dabin.nn.functional import batch_instance_norm
from dabin.nn.gates import GATE_LR_BASES, GateClamp, GateLrBase, bin_param_groups, clamp_gates_, gate_parameters
from dabin.nn.grl import GradientReversal, gradient_reversal
from dabin.nn.recalibrate import NORM_STATS_ESTIMATES, NormStatsEstimate, recalibrate_norm_stats
from dabin.nn.group import GroupSynced, group_moments
from dabin.nn.sync import SyncBatchInstanceNorm, SyncNorm, convert_sync_norm, revert_sync_norm

__all__ = [
    "IBN",
    "NORMS",
    "NORM_SPECS",
    "DomainNeed",
    "MixStyle",
    "NormSpec",
    "SwitchNorm2d",
    "TransNorm2d",
    "domain_split",
    "eval_statistics",
    "insert_mixstyle",
    "mixstyle_disabled",
    "official_ibn_state_dict",
    "TARGET_GATE",
    "NORM_STATS_ESTIMATES",
    "BatchInstanceNorm1d",
    "BatchInstanceNorm2d",
    "BatchInstanceNorm3d",
    "GateClamp",
    "GroupSynced",
    "GradientReversal",
    "NormName",
    "NormStatsEstimate",
    "SyncBatchInstanceNorm",
    "SyncNorm",
    "batch_instance_norm",
    "GATE_LR_BASES",
    "GateLrBase",
    "add_domain_stats",
    "bin_param_groups",
    "compiled",
    "check_norm",
    "clamp_gates_",
    "convert_layer",
    "convert_norm",
    "convert_sync_norm",
    "gate_parameters",
    "gradient_reversal",
    "group_moments",
    "norm_layer",
    "recalibrate_norm_stats",
    "revert_sync_norm",
    "target_gates",
    "target_stats",
]
