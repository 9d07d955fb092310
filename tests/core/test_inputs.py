"""Embeddings CSV import and token labels (core.inputs, core.tokens, core.files): line numbers
that count blank lines, line breaks in quoted labels refused, unique labels that never collide,
and files checked before they are opened."""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.inputs import load_embeddings_csv, parse_embeddings_csv
from core.tokens import MAX_LABEL_CHARS, unique_labels
from tests.core.snapshots import message_from_fifo


@pytest.mark.parametrize("text, words", [
    ("token,a,b\n\n\nx,1,2\ny,3\n", "line 5 has 1 values, line 4 has 2"),
    ("\n\nx,1,2\n\ny,1,zz\n", "line 5, column 3: 'zz' is not a number"),
    ("x,1,2\r\n\r\ny,1\r\n", "line 3 has 1 values, line 1 has 2"),
    ("x,1,2\n\n,3,4\n", "line 3 has no token label"),
    ("token,\"d\n0\"\nx,1\ny,1,2\n", "line 4 has 2 values, line 3 has 1"),   # a quoted header cell spans lines 1-2
])
def test_csv_errors_name_the_line_of_the_file(text, words):
    """The line a text editor shows: blank lines count (they were skipped before numbering)."""
    with pytest.raises(ValueError, match=words):
        parse_embeddings_csv(text)


def test_a_line_break_inside_a_quoted_label_is_refused_by_line():
    """'"a\\nb"' was read as the label 'ab' (the line break silently dropped)."""
    with pytest.raises(ValueError, match=r"line 2: the token label 'a\\nb' contains a line break"):
        parse_embeddings_csv('token,d0,d1\n"a\nb",1,2\nc,3,4\n')
    with pytest.raises(ValueError, match="line break"):
        parse_embeddings_csv('"a\rb",1,2\n')


def test_a_quoted_label_with_a_comma_and_the_lines_after_it():
    inp = parse_embeddings_csv('token,d0\n"a, b",1\n\n"c ""d""",2\n')
    assert inp.tokens == ("a, b", 'c "d"') and inp.values == ((1.0,), (2.0,))


def test_csv_with_old_mac_line_ends_and_a_bom():
    inp = parse_embeddings_csv("x,1,2\ry,3,4\r")
    assert inp.tokens == ("x", "y") and inp.values == ((1.0, 2.0), (3.0, 4.0))


def test_csv_label_rules():
    with pytest.raises(ValueError, match=f"line 1: the token label .* the limit is {MAX_LABEL_CHARS}"):
        parse_embeddings_csv("x" * (MAX_LABEL_CHARS + 1) + ",1\n")
    assert parse_embeddings_csv("x" * MAX_LABEL_CHARS + ",1\n").tokens == ("x" * MAX_LABEL_CHARS,)


@pytest.mark.parametrize("tokens, labels", [
    (["a", "a", "a#2"], ("a", "a#3", "a#2")),               # was a, a#2, a#2
    (["a#2", "a", "a"], ("a#2", "a", "a#3")),
    (["a", "a#2", "a", "a#2"], ("a", "a#2", "a#3", "a#2#2")),
    (["the", "cat", "the", "the"], ("the", "cat", "the#2", "the#3")),   # unchanged where nothing collides
])
def test_unique_labels_never_collide_with_a_real_label(tokens, labels):
    got = unique_labels(tokens)
    assert got == labels
    assert len(set(got)) == len(got)
    assert [g for g, t in zip(got, tokens) if g == t] == [t for i, t in enumerate(tokens) if t not in tokens[:i]]


def test_csv_with_duplicate_labels_gets_distinct_row_labels():
    inp = parse_embeddings_csv("a,1\na,2\na#2,3\n")
    assert inp.tokens == ("a", "a", "a#2") and len(set(inp.labels)) == 3


def test_a_bom_is_accepted(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftoken,d0\ncafé,1\n".encode("utf-8"))
    assert load_embeddings_csv(p).tokens == ("café",)


def test_not_utf8_names_the_byte(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes(b"caf\xe9,1\n")
    with pytest.raises(ValueError, match="cannot be read: it is not UTF-8 text \\(byte 0xE9 at offset 3\\)"):
        load_embeddings_csv(p)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    """Opening a FIFO for reading waits for a writer for ever: it is refused before."""
    message = message_from_fifo(tmp_path / "pipe.csv", load_embeddings_csv, ValueError, b"x,1\n")
    assert "is a named pipe (FIFO), not a file" in message


def test_a_path_that_is_not_text_is_one_message():
    with pytest.raises(ValueError, match="cannot be opened: the name contains characters that are not text"):
        load_embeddings_csv("emb\ud800.csv")


def test_random_embeddings_are_one_seeded_draw_per_word():
    """Each word's row is torch.rand(d_in) from its own generator seeded by (seed, crc32 of the
    lower-cased word): the same in any text, and repeated words repeat their row exactly."""
    import zlib

    import torch
    from core.inputs import random_inputs
    tokens = ["The", "cat", "the", "dog", "cat", "é"]
    got = random_inputs(tokens, 5, seed=77).array
    for i, tok in enumerate(tokens):
        gen = torch.Generator().manual_seed((77 * 1_000_003 + zlib.crc32(tok.lower().encode("utf-8"))) % (2**63))
        np.testing.assert_array_equal(got[i], torch.rand(5, generator=gen, dtype=torch.float64).numpy())
    np.testing.assert_array_equal(got[0], got[2])                          # "The" and "the"
    np.testing.assert_array_equal(random_inputs(["dog"], 5, seed=77).array[0], got[3])


def test_random_embeddings_are_kept_for_the_same_words_width_and_seed():
    """A change that keeps the text, d_in and seed gets the same read-only Inputs (and tensor)
    back; any of the three changed draws anew, with the values of a fresh draw."""
    import torch
    from core.inputs import _random_inputs, random_inputs
    a = random_inputs(["kept", "words"], 4, seed=5)
    assert random_inputs(("kept", "words"), 4, seed=5) is a
    assert a.shared_tensor(torch.float32) is random_inputs(["kept", "words"], 4, 5).shared_tensor(torch.float32)
    assert not a.array.flags.writeable
    assert random_inputs(["kept", "words"], 3, 5).array.shape == (2, 3)
    for other in (random_inputs(["kept", "word"], 4, 5), random_inputs(["kept", "words"], 4, 6)):
        assert other is not a and not np.array_equal(other.array[1], a.array[1])
    fresh = _random_inputs.__wrapped__(("kept", "words"), 4, 5)
    assert fresh is not a and fresh == a
