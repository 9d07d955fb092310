"""The next-word task's ready text: the generated agreement grammar, its link, and that a head learns it."""
import random

import numpy as np

import main
from core.train import corpus
from core.train.metrics import expected_cells
from core.train.runner import train
from core.train.settings import DEFAULT_TEXT, defaults_for
from core.train.tasks import read_text, tokenize_words


def test_the_shipped_text_is_what_the_generator_writes():
    assert DEFAULT_TEXT == str(corpus.PATH)
    assert read_text(DEFAULT_TEXT) == corpus.generate()           # regenerate: python -m core.train.corpus


def test_every_verb_agrees_with_its_subject_and_not_with_the_nearest_word():
    singular_nouns, plural_nouns = set(corpus.NOUNS), set(corpus.NOUNS.values())
    singular_verbs, plural_verbs = set(corpus.VERBS), set(corpus.VERBS.values())
    lines = corpus.generate(seed=7, sentences=400).splitlines()
    distances = set()
    for line in lines:
        words = line.split()
        nouns = [i for i, w in enumerate(words) if w in singular_nouns | plural_nouns]
        verbs = [i for i, w in enumerate(words) if w in singular_verbs | plural_verbs]
        assert len(nouns) == 1 and len(verbs) == 1 and words[-1] == "."
        assert (words[nouns[0]] in plural_nouns) == (words[verbs[0]] in plural_verbs)
        distances.add(verbs[0] - nouns[0])
    assert distances == {1, 3, 4, 5}                                 # the link's length varies
    assert all(" that " in line for line in corpus.generate().splitlines()[:3])


def test_agreement_pairs_link_the_word_before_the_verb_to_the_subject():
    words = "the dogs that we fed yesterday run . the cat sleeps now . the old bird that i saw sings .".split()
    queries, keys = corpus.agreement_pairs(words)
    # "yesterday" (5) -> "dogs" (1); "the cat sleeps": the verb follows its subject, no link;
    # "saw" (18) -> "bird" (15)
    assert queries.tolist() == [5, 18] and keys.tolist() == [1, 15]
    assert [words[q + 1] for q in queries] == ["run", "sings"]
    assert np.array_equal(np.stack(expected_cells("next_word", words)), np.stack([queries, keys]))
    assert corpus.agreement_pairs("a story with no such sentence .".split())[0].size == 0


def test_a_layer_1_head_learns_the_verb_to_subject_link_on_the_ready_text():
    """The default next-word run on the ready text (~7 s): a layer-1 head puts ≥ 0.5 of its weight on
    the subject from the word before the verb; no layer-0 head does."""
    run = train(defaults_for("next_word", device="cpu"))
    assert run.settings.text_path == DEFAULT_TEXT
    tokens = run.probe_tokens
    assert tuple(tokenize_words(read_text(DEFAULT_TEXT))[: len(tokens)]) == tokens
    queries, keys = corpus.agreement_pairs(tokens)
    assert len(queries) >= 3
    last = run.snapshots[-1].attn_weights[..., queries, keys].mean(axis=-1)      # (L, h)
    first = run.snapshots[0].attn_weights[..., queries, keys].mean(axis=-1)
    assert last[1].max() >= 0.5 and last[0].max() < 0.5, last
    assert first.max() < 0.3


def test_the_cli_trains_next_word_on_the_ready_text_by_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert main.main(["train", "--task", "next_word", "--out", str(out), "--steps", "2", "--snapshot-every", "1",
                      "--device", "cpu", "--seq-len", "8", "--d-model", "8", "--heads", "1"]) == 0
    assert "trained next_word for 2 steps" in capsys.readouterr().out
    from core.train.runfile import load_run
    assert load_run(out / "run.npz").settings.text_path == DEFAULT_TEXT
