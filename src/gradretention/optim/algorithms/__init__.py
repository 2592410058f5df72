"""Algorithms outside the rule × controller composition, with the same contract and hooks.

RescaledSGD's rate is per element (not one α per group) and EnhancedSGD's controller is global
(one Q-learner for all groups, fed the loss), so each is an optimizer of its own: the reference
loop, its eager fused path and its compiled twin (``*_kernels.py``; RescaledSGD's first pass also
has a hand-written C++ loop, :mod:`gradretention.optim.native`), sharing :mod:`gradretention.optim.kernels` and
:mod:`gradretention.optim.contract` with the composed optimizers.
"""
