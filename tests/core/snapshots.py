"""Shared helpers of the bad-input tests (core and GUI): a folder's exact contents, to prove a
failed or cancelled write left it as it was; bad input files; a write that fails on its n-th call."""
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


def hashes(root: Path) -> dict[str, str | None]:
    """Every path under root (hidden ones too) -> sha256 of the file's bytes, "link:TARGET" for a
    symlink (not followed), None for a folder: two equal results mean byte-identical contents."""
    import hashlib
    found: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                found[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                found[rel] = None
            else:
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def users_files(folder: Path) -> dict[str, bytes]:
    """The issue-19 folder: the user's data.csv and figure.npy and their own manifest.json listing them."""
    import json
    files = {"data.csv": b"year,value\n2024,3.5\n", "figure.npy": b"\x93NUMPY my figure",
             "manifest.json": json.dumps({"files": ["data.csv", "figure.npy"]}).encode()}
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    return files


def existing_target(root: Path) -> Path:
    """A folder under root that already holds the user's files and an older export of this app
    (causal/mask.csv and its manifest.json, stamped as core.safe_folder stamps every export's).
    Written directly: a test may patch the filesystem calls before calling this."""
    import json
    from core.safe_folder import OWNER_KEY, stamp
    target = root / "target"
    (target / "causal").mkdir(parents=True)
    (target / "trainable").mkdir()  # an empty folder of the user's, where the export writes too
    (target / "notes.txt").write_text("my notes\n")
    (target / "causal" / "mask.csv").write_text("an older export\n")
    (target / "causal" / "mine.csv").write_text("keep,me\n")
    (target / "manifest.json").write_text(json.dumps({"old": True, OWNER_KEY: stamp("0" * 32, ["causal/mask.csv"])}))
    return target


def make_input_files(root: Path) -> dict[str, str]:
    """Bad (and one good) embeddings CSVs in root/inputs; name -> path."""
    d = root / "inputs"
    d.mkdir()
    contents = {
        "empty": "",
        "blank_lines": "\n \n\t\n",
        "header_only": "token,d0,d1\n",
        "ragged": "a,1,2\nb,3\n",
        "no_values": "a\nb\n",
        "non_number": "a,1,2\nb,3,x\n",
        "nan": "a,1,nan\nb,1,2\n",
        "inf": "a,1,2\nb,inf,2\n",
        "minus_inf": "a,-inf,2\nb,1,2\n",
        "no_label": "a,1,2\n,3,4\n",
        "width2": "token,d0,d1\na,0.1,0.2\nb,0.3,0.4\n",
        "huge_field": "a," + "1" * 200_000 + "\n",
        "huge_value": "a,1,2\nb,3,1e300\n",
    }
    paths = {}
    for name, text in contents.items():
        p = d / f"{name}.csv"
        p.write_text(text, encoding="utf-8")
        paths[name] = str(p)
    p = d / "latin1.csv"
    p.write_bytes(b"\xff\xfe caf\xe9,1,2\n")
    paths["latin1"] = str(p)
    p = d / "label_newline.csv"
    p.write_text('token,d0,d1\n"a\nb",1,2\n', encoding="utf-8")
    paths["label_newline"] = str(p)
    paths["missing"] = str(d / "missing.csv")
    paths["folder"] = str(d)
    paths["name_too_long"] = str(d / ("x" * 5000 + ".csv"))
    return paths


def fail_nth(real, n: int, error: OSError):
    """A wrapper of ``real`` whose n-th call (1-based) raises ``error``; the others pass."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return real(*args, **kwargs)

    wrapped.calls = calls
    return wrapped


def fail_nth_file_write(monkeypatch, n: int, error: BaseException) -> None:
    """The export's n-th file write (1-based: a CSV slice, then the manifest) raises ``error``.

    CSV files are created by core.csv_writer.create_file (a slice formatted or one copied from an
    identical earlier slice), the manifest by Path.write_text: both are counted, in the order the
    export writes them.
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
    monkeypatch.setattr(core.csv_writer, "create_file", failing(core.csv_writer.create_file))


def message_from_fifo(fifo: Path, load, error: type, payload: bytes) -> str:
    """Make a named pipe at ``fifo`` and call ``load(fifo)`` on a thread; the message of the
    ``error`` it raises ("" if none). Opening a FIFO for reading waits for a writer: if ``load``
    is still stuck after 20 s, a writer unblocks it with ``payload`` so the test fails, not hangs."""
    import os
    import threading
    os.mkfifo(fifo)
    result: list[str] = []

    def run():
        try:
            load(fifo)
        except error as exc:
            result.append(str(exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, payload)
        os.close(fd)
        t.join(5)
    return result[0] if result else ""
