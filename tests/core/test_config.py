"""Config validation: every invalid value raises ConfigError naming the field."""
import pytest

from core import AttentionConfig, ConfigError
from core.inputs import parse_embeddings_csv, tokenize, unique_labels

BAD = [
    (dict(d_out=3, num_heads=2), "num_heads", "divisible"),
    (dict(d_out=0), "d_out", "between"),
    (dict(d_in=-1, embeddings="random"), "d_in", "between"),
    (dict(num_heads=0), "num_heads", "between"),
    (dict(d_out=10**9), "d_out", "between"),
    (dict(dropout=1.0), "dropout", "[0, 1)"),
    (dict(dropout=-0.1), "dropout", "[0, 1)"),
    (dict(dropout=float("nan")), "dropout", "[0, 1)"),
    (dict(seed=-1), "seed", "between"),
    (dict(dropout_seed=-5), "dropout_seed", "between"),
    (dict(text="   ", embeddings="random"), "text", "empty"),
    (dict(init="xavier"), "init", "rand, linear"),
    (dict(device="tpu"), "device", "auto, cpu, cuda"),
    (dict(dtype="float16"), "dtype", "float32, float64"),
    (dict(text="my own words"), "embeddings", "random"),
    (dict(d_in=4), "d_in", "3-dimensional"),
    (dict(batch=0), "batch", "between"),
    (dict(d_out=2.5), "d_out", "whole number"),
    (dict(causal="yes"), "causal", "true or false"),
]


@pytest.mark.parametrize("changes,field,words", BAD, ids=[b[1] + "-" + str(i) for i, b in enumerate(BAD)])
def test_invalid_values_name_the_field(changes, field, words):
    with pytest.raises(ConfigError) as err:
        AttentionConfig(**changes)
    assert err.value.field == field
    assert str(err.value).startswith(field + ":") and words in str(err.value)


def test_replace_validates_and_from_dict_round_trips():
    cfg = AttentionConfig()
    assert AttentionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        cfg.replace(num_heads=3)
    with pytest.raises(ConfigError, match="unknown field"):
        AttentionConfig.from_dict({"heads": 2})


def test_tokenize_words_and_punctuation():
    assert tokenize("Your journey starts with one step") == ["Your", "journey", "starts", "with", "one", "step"]
    assert tokenize("Hi, you! It's 3.5") == ["Hi", ",", "you", "!", "It's", "3", ".", "5"]
    assert unique_labels(["the", "cat", "the"]) == ("the", "cat", "the#2")


def test_embeddings_csv_messages():
    inp = parse_embeddings_csv("token,a,b\nx,1,2\ny,3,4\n")
    assert inp.tokens == ("x", "y") and inp.values == ((1.0, 2.0), (3.0, 4.0))
    assert parse_embeddings_csv("x,1,2\n").values == ((1.0, 2.0),)
    for text, words in [("", "empty"), ("t,a\nx,1\ny,1,2\n", "same number"), ("x,1,zz\n", "not a number"),
                        ("x,1,nan\n", "finite"), ("x,inf\n", "finite"), ("t,a\n", "no token rows")]:
        with pytest.raises(ValueError, match=words):
            parse_embeddings_csv(text)


def test_random_embeddings_repeat_per_word():
    from core import build_trace
    t = build_trace(AttentionConfig(embeddings="random", text="the cat saw the dog", d_in=4))
    x = t["simplified", "inputs"].tensor
    assert (x[0] == x[3]).all() and not (x[0] == x[1]).all()
    assert t.labels == ("the", "cat", "saw", "the#2", "dog")
