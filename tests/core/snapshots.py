"""A folder's exact contents, to prove a failed or cancelled write left it as it was."""
import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (hidden ones too) -> file bytes, or None for a folder."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            found[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            found[os.path.relpath(p, root)] = Path(p).read_bytes()
    return found


def existing_target(root: Path) -> Path:
    """A folder under root that already holds the user's files and an older export."""
    target = root / "target"
    (target / "causal").mkdir(parents=True)
    (target / "trainable").mkdir()  # an empty folder of the user's, where the export writes too
    (target / "notes.txt").write_text("my notes\n")
    (target / "causal" / "mask.csv").write_text("an older export\n")
    (target / "causal" / "mine.csv").write_text("keep,me\n")
    (target / "manifest.json").write_text('{"old": true}\n')
    return target


def fail_nth_file_write(monkeypatch, n: int, error: BaseException) -> None:
    """The export's n-th file write (1-based: a CSV slice, then the manifest) raises ``error``.

    CSV slices are streamed by core.csv_writer.write_slice, the manifest by Path.write_text:
    both are counted, in the order the export writes them.
    """
    import core.csv_writer
    calls = {"n": 0}

    def failing(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n:
                raise error
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(Path, "write_text", failing(Path.write_text))
    monkeypatch.setattr(core.csv_writer, "write_slice", failing(core.csv_writer.write_slice))
