"""Issue 19, cause 1 in the window: File → Export all into a folder whose manifest.json is the
user's own goes through the same core path: one status line, every file byte-identical."""
from __future__ import annotations

from PySide6 import QtWidgets

from tests.core.snapshots import hashes, users_files
from tests.gui.fixtures import export_all, step_index


def test_export_all_into_a_folder_with_the_users_own_manifest_is_refused_in_one_line(window, qtbot, tmp_path,
                                                                                     monkeypatch):
    c = window.controller
    c.go(step_index(c, "trainable.scores"))
    out = tmp_path / "export\nnew line"              # a line break in the name: still one line
    users_files(out)
    before = hashes(tmp_path)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(out))
    message = export_all(window, qtbot)
    assert message.startswith("Export failed: ") and "\n" not in message
    assert "holds a manifest.json that this app did not write; nothing was changed" in message
    assert window.statusBar().currentMessage() == message
    assert hashes(tmp_path) == before
