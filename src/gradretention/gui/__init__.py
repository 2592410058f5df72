"""The live GUI and the decision-boundary animation.

``presenter`` (events → what to draw) and ``worker`` / ``training`` (the training thread)
import no Tk; ``app``, ``control_bar`` and ``dialogs`` hold the Tk widgets and no training
logic. Entry points: :func:`gradretention.gui.app.gui_main` and
:func:`gradretention.gui.animate.animate_main`.
"""
