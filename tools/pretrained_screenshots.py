"""Render the pretrained views to PNG, offscreen: ``python -m tools.pretrained_screenshots --out DIR``.

Writes the head gallery with the token lines (the ready example, layer 2 head 4 chosen: "him"
looks at "dog"), the same with [CLS]/[SEP] hidden, and the token lines of layer 0 head 2 (the
previous-token head) alone, at the given window size.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.pretrained_screenshots", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--size", default="1366x768", help="window size, WxH (default: 1366x768)")
    p.add_argument("--text", default=None, help="the sentence (default: the ready example)")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from core.pretrained import gallery
    from core.pretrained_config import EXAMPLE_TEXT
    from gui.pretrained_view import PretrainedPanel, TokenLines

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = args.text or EXAMPLE_TEXT
    panel = PretrainedPanel(lambda t: gallery(t, device="cpu"))
    panel.resize(width, height)
    panel.show()
    panel.set_text(text)
    panel.loader.wait()
    app.processEvents()
    panel.select(2, 4)
    app.processEvents()
    panel.grab().save(str(out / "pretrained_gallery.png"))
    panel.hide_special.setChecked(True)
    app.processEvents()
    panel.grab().save(str(out / "pretrained_gallery_no_special.png"))
    lines = TokenLines()
    lines.resize(width, height)
    g = panel.gallery
    lines.set_weights(g.attn_weights[0, 2].numpy(), g.labels, query=5, title="layer 0, head 2: the previous-token head")
    lines.show()
    app.processEvents()
    lines.grab().save(str(out / "pretrained_token_lines.png"))
    print(f"wrote 3 PNG files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
