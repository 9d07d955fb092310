"""Developer tools around the app (not part of it): the benchmark, screenshot renderers, start-up probe.

They drive the real window from outside (``gui.app.make_window``); nothing in ``gui/`` imports them
except ``gui.app``'s opt-in start-up probe (enabled by an environment variable).
"""
