"""Helpers shared by the bad-input tests (tests/core/test_cli.py, tests/gui/): bad input files,
and a wrapper that makes the n-th call of a function fail."""
from pathlib import Path


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
