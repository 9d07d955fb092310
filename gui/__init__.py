"""The desktop GUI of Attention Stepper (PySide6 + pyqtgraph).

Modules imported at start-up never import torch or ``core`` at module level, so the window
appears before torch has loaded; the controller's worker thread imports ``core`` lazily.
"""
