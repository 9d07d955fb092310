"""The first window as a learner sees it, on the screen it runs on: fresh settings, no resize.

    xvfb-run -a -s "-screen 0 1366x768x24" python -m tools.window_shots --out DIR 3.5 click:2.4
    xvfb-run -a -s "-screen 0 1920x1080x24" python -m tools.window_shots --out DIR \
        --text "The old dog chased the quick fox which bit him again today" \
        --set embeddings=random d_in=768 d_out=768 num_heads=12 -- 1.6 3.5 4.6

Each step number (as the navigator shows it) is grabbed as the whole screen to DIR/<n_m>.png;
``click:2.4`` also clicks a cell of the step's last matrix first (the inspector's arithmetic);
``code:5.7`` brings the Code tab forward (the step's torch lines).
``--bar decode.variant=mla rope.form=interleaved`` sets the options of stages 6–8's bars first
(gui.external_stage.DecodeOptions / TiledOptions / RopeOptions).
Settings live in a temporary folder (the user's are neither read nor written); the tour is off.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tools.screenshots import _value      # "12" -> 12, "0.5" -> 0.5, else the text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.window_shots", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--text", help="the learner's own sentence (custom settings)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config fields, e.g. num_heads=12")
    p.add_argument("--bar", nargs="*", default=[], metavar="STAGE.FIELD=VALUE",
                   help="stages 6–8's bar options, e.g. decode.variant=mla decode.kv_groups=4 tiled.fa2=true")
    p.add_argument("steps", nargs="+", help="step numbers (1.6, 3.5 …), click:N.M to click a cell first, "
                                             "code:N.M to show the Code tab")
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="stepper-window-shots-")
    os.environ.update(XDG_CONFIG_HOME=str(Path(home) / "config"), XDG_DATA_HOME=str(Path(home) / "data"),
                      ATTENTION_STEPPER_TOUR="0")
    from PySide6 import QtCore, QtWidgets
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    app.setApplicationName("Attention Stepper")
    app.setOrganizationName("AttentionStepper")
    from gui.app import make_window, start
    from gui.steps import step_numbers
    controller, win = make_window()
    win.show()

    def settle(seconds: float = 0.8, until=lambda: True, limit: float = 120.0) -> None:
        t0 = time.monotonic()
        while (time.monotonic() - t0 < seconds or not until()) and time.monotonic() - t0 < limit:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    start(win, controller)
    settle(until=lambda: controller.model.has_trace)
    changes = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    if args.text:
        changes["text"] = args.text
    if changes:
        controller.set_params(**changes)
        settle(until=lambda: not controller.is_busy())
    bars: dict[str, dict] = {}
    for item in args.bar:
        key, value = item.split("=", 1)
        stage, field = key.split(".", 1)
        bars.setdefault(stage, {})[field] = _value(value)
    for stage, options in bars.items():
        ctl = win.external.get(stage)
        refused: list[str] = []
        try:
            if ctl is None:
                refused.append(f"no such stage (decode, tiled or rope): {stage!r}")
            else:
                ctl.error.connect(refused.append)
                ctl.set_options(**options)
        except TypeError:              # a field the stage's options do not have
            refused.append(f"unknown option among {sorted(options)}")
        if refused:
            print(f"--bar {stage}: {refused[0]}", file=sys.stderr)
            win.close()
            controller.shutdown()
            return 2

    def stages_idle() -> bool:
        return not controller.is_busy() and not any(e.busy for e in win.external.values())
    numbers = list(step_numbers())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for step in args.steps:
        click, code = step.startswith("click:"), step.startswith("code:")
        number = step.split(":")[-1]
        controller.go(numbers.index(number))
        if code:
            win.docks["code"].show()
            win.docks["code"].raise_()
        settle(until=stages_idle)
        settle(0.0, until=lambda: bool(controller.model.shown) and stages_idle(), limit=30.0)   # a stage 6–8 trace: its maps
        settle(0.4)                                     # and their paint (a busy machine delivers it late)
        if click:
            shown = controller.model.shown
            controller.model.click(len(shown) - 1, 0, 1, min(2, shown[-1].shape[1] - 1))
            settle()
        path = out / f"{number.replace('.', '_')}{'_click' if click else '_code' if code else ''}.png"
        app.primaryScreen().grabWindow(0).save(str(path), "PNG")
        print(path)
    win.close()
    controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
