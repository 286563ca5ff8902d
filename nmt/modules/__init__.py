"""Token-mixing mechanisms (attention, convolutions, deformable, salient) behind one interface.

What writing a mechanism of your own needs (docs/extending.md)::

    from nmt.modules import BuildContext, MechanismOptions, Mixer, MixerState, register
"""

from nmt.modules.base import Mixer, MixerState, State, TimeCache, extend_cache, linear_flops, reorder_state, softmax_flops
from nmt.modules.options import BuildContext, MechanismOptions, register

__all__ = ["BuildContext", "MechanismOptions", "Mixer", "MixerState", "State", "TimeCache", "extend_cache", "linear_flops",
           "register", "reorder_state", "softmax_flops"]
