"""The next-word task's ready text: a seeded toy grammar in which a verb agrees with its subject.

    python -m core.train.corpus          # writes resources/agreement.txt (the shipped file)

Every sentence is ``the [adjective] noun [clause] verb [adverb] .`` where the clause is
``that pronoun past-verb [adverb]`` or ``that past-verb [adverb]``, e.g. "the dog that we fed
yesterday runs ." / "the dogs that we fed yesterday run .": the main verb's ending (runs / run)
is set by the subject noun, right before it or three to five words back, with a pronoun ("we",
"she") in between that does not count. To predict the verb, the word just before
it must look back at the subject: that is the link a head learns (``agreement_pairs`` finds it in
any list of tokens, for the Train view's guide and score). Torch-free; the text is reproducible
from ``SEED`` (a test checks the shipped file against it).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np

SEED = 2022
SENTENCES = 3000
FILE_NAME = "agreement.txt"
PATH = Path(__file__).resolve().parents[2] / "resources" / FILE_NAME

NOUNS = {"dog": "dogs", "cat": "cats", "bird": "birds", "child": "children", "teacher": "teachers",
         "farmer": "farmers", "horse": "horses", "baker": "bakers"}
ADJECTIVES = ("old", "small", "happy", "tired")
PRONOUNS = ("we", "they", "you", "i", "she", "he")
PAST_VERBS = ("fed", "saw", "met", "liked", "found", "called")
PAST_INTRANSITIVE = ("slept", "waited", "ran", "sang")
CLAUSE_ADVERBS = ("yesterday", "twice", "again")
VERBS = {"runs": "run", "sleeps": "sleep", "sings": "sing", "waits": "wait", "jumps": "jump", "eats": "eat"}
END_ADVERBS = ("today", "outside", "now")

SINGULAR_NOUNS, PLURAL_NOUNS = frozenset(NOUNS), frozenset(NOUNS.values())
SINGULAR_VERBS, PLURAL_VERBS = frozenset(VERBS), frozenset(VERBS.values())


def sentence(rng: random.Random, clause: bool | None = None) -> list[str]:
    """One sentence as words (the full stop a word of its own)."""
    plural = rng.random() < 0.5
    noun = rng.choice(sorted(NOUNS))
    words = ["the"]
    if rng.random() < 0.3:
        words.append(rng.choice(ADJECTIVES))
    words.append(NOUNS[noun] if plural else noun)
    if clause if clause is not None else rng.random() < 0.6:
        if rng.random() < 0.6:
            words += ["that", rng.choice(PRONOUNS), rng.choice(PAST_VERBS)]     # the dog that we fed
        else:
            words += ["that", rng.choice(PAST_INTRANSITIVE)]                     # the dog that slept
        if rng.random() < 0.4:
            words.append(rng.choice(CLAUSE_ADVERBS))
    verb = rng.choice(sorted(VERBS))
    words.append(VERBS[verb] if plural else verb)
    if rng.random() < 0.3:
        words.append(rng.choice(END_ADVERBS))
    return words + ["."]


def generate(seed: int = SEED, sentences: int = SENTENCES) -> str:
    """The corpus: one sentence per line; the first three have a relative clause, so the probe
    (the text's first words) shows the link."""
    rng = random.Random(seed)
    lines = [" ".join(sentence(rng, clause=True if i < 3 else None)) for i in range(sentences)]
    return "\n".join(lines) + "\n"


def agreement_pairs(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(queries, keys): in each sentence whose main verb is at least two words after its subject,
    the word just before the verb (query) and the subject noun (key)."""
    queries, keys = [], []
    subject, done = None, False
    for i, token in enumerate(tokens):
        if token == ".":
            subject, done = None, False
        elif done:
            continue
        elif subject is None and (token in SINGULAR_NOUNS or token in PLURAL_NOUNS):
            subject = i
        elif subject is not None and (token in SINGULAR_VERBS or token in PLURAL_VERBS):
            if i - subject >= 2:
                queries.append(i - 1)
                keys.append(subject)
            done = True                       # one main verb per sentence
    return np.asarray(queries, dtype=np.int64), np.asarray(keys, dtype=np.int64)


def main() -> int:
    PATH.write_text(generate(), encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
