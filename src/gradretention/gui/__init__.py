"""The live GUI and the decision-boundary animation.

``presenter`` (events → what to draw, which controls are live), ``worker`` / ``training``
(the training thread), ``demo`` (the default race and its tuned learning rates) and
``options`` import no Tk; ``app``, ``flow`` (the toolbar that wraps to the screen's width),
``control_bar`` and ``dialogs`` hold the Tk widgets and no training logic. Entry points:
:func:`gradretention.gui.app.gui_main` and :func:`gradretention.gui.animate.animate_main`.
"""
