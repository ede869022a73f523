"""Adapters trained elsewhere: check a plain peft LoRA folder against a base model, import it, open it.

Two kinds are read (models.registry.READOUTS):
- a causal-LM adapter (peft task_type CAUSAL_LM) with its own prompt template and label words,
  read like PhishLens' own: logit(positive word) − logit(negative word) at the last position;
- a sequence-classification adapter (task_type SEQ_CLS: LoRA plus a trained `score` head over the
  last token), read as its head's logit difference, score[positive] − score[negative].

A classification head is opened as a causal LM whose unembedding is zero but for HEAD_ROWS, which
hold the head's two rows (head_as_unembedding). The score every module reads (label_token_ids'
two rows) is then exactly the head's logit difference, and every explainer and head diagnostic runs
unchanged; where one reads the unembedding (logit lens, direct logit attribution) it reads the
head's difference direction. tests/models/test_imported.py checks both against peft's own forward.

The prompt template and label words come from flags or from IMPORT_META_FILE beside the adapter;
the adapter folder is copied under the store's adapters folder with a phishlens_adapter.json, and
the user's folder is never written to.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import safe_open

from data.records import AdapterInfo
from data.scorers import IMPORTED_SET_PREFIX
from models.adapter_check import (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, AdapterMismatch, check_adapter_weights,
                                  read_adapter_config)
from models.loading import (ADAPTER_INFO_FILE, LoadedModel, ModelError, check_base_is_local, load_tokenizer,
                            prepare_model, sha256_file, weights_hash)
from models.registry import CLASSIFICATION_HEAD, HEAD_ROWS, LABEL_WORDS, ModelSpec, resolve_model, scorer_spec

IMPORT_META_FILE = "phishlens_import.json"  # optional, beside the adapter: see README "Bring your own detector"
META_KEYS = ("prompt_template", "label_words", "positive_label", "name")
PICKLE_WEIGHTS = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
HEAD_MODULES = ("score", "classifier")  # where peft's SEQ_CLS saves the head (modules_to_save)
TASK_READOUTS = {"CAUSAL_LM": LABEL_WORDS, None: LABEL_WORDS, "SEQ_CLS": CLASSIFICATION_HEAD}


class ImportRefused(ModelError):
    """An adapter folder that cannot be imported as asked; the message says why and what to do."""


@dataclass(frozen=True)
class HeadShape:
    """A sequence-classification adapter's head, from its safetensors header: weight key and shape."""

    key: str
    num_labels: int
    hidden_size: int
    has_bias: bool


@dataclass(frozen=True)
class ImportRequest:
    """What `import-adapter` was asked: the folder, the base model, and (overriding the folder's
    IMPORT_META_FILE) the prompt template, the (negative, positive) label words, the head's positive
    label index and the scorer's name."""

    folder: Path
    model: str
    prompt_template: str | None = None
    label_words: tuple[str, str] | None = None
    positive_label: int | None = None
    name: str | None = None
    seed: int = 0


def read_import_meta(folder: Path) -> dict:
    """IMPORT_META_FILE as a dict ({} when absent); refuses unknown keys, so a typo is not ignored."""
    path = Path(folder) / IMPORT_META_FILE
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ImportRefused(f"{path} cannot be read as JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ImportRefused(f"{path} must hold a JSON object with keys {', '.join(META_KEYS)}")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ImportRefused(f"{path} has unknown keys {unknown}; known: {', '.join(META_KEYS)}")
    return meta


def check_files(folder: Path) -> dict:
    """The adapter's peft config, after refusing a folder that is not a LoRA adapter in safetensors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportRefused(f"{folder} is not a folder; pass the folder peft's save_pretrained wrote")
    if not (folder / ADAPTER_WEIGHTS_FILE).exists():
        pickled = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        if pickled:
            raise ImportRefused(f"{folder} holds its weights as a pickle ({pickled[0]}), which can run code when "
                                f"loaded: PhishLens loads safetensors only. Save the adapter again with "
                                f"save_pretrained(..., safe_serialization=True) where it was trained")
        raise ImportRefused(f"{folder} has no {ADAPTER_WEIGHTS_FILE}; not a peft adapter folder")
    try:
        config = read_adapter_config(folder)
    except AdapterMismatch as exc:
        raise ImportRefused(str(exc)) from exc
    if config.get("task_type") not in TASK_READOUTS:
        raise ImportRefused(f"{folder}: task_type {config.get('task_type')!r} is not read by PhishLens; it imports "
                            f"CAUSAL_LM adapters (read at two label words) and SEQ_CLS ones (a classification head)")
    return config


def head_shape(folder: Path) -> HeadShape:
    """The classification head saved with a SEQ_CLS adapter (peft's modules_to_save), from the header only."""
    weights = Path(folder) / ADAPTER_WEIGHTS_FILE
    with safe_open(str(weights), "pt") as handle:
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    for key, shape in shapes.items():
        module = key.removeprefix("base_model.model.").removesuffix(".weight").removesuffix(".modules_to_save.default")
        if module in HEAD_MODULES and key.endswith(".weight") and len(shape) == 2:
            return HeadShape(key, shape[0], shape[1], key.removesuffix("weight") + "bias" in shapes)
    raise ImportRefused(f"{weights} is a sequence-classification adapter (task_type SEQ_CLS) without a trained head: "
                        f"no {' or '.join(HEAD_MODULES)} weight among its tensors. Train it with the head in "
                        f"modules_to_save (peft does this for SEQ_CLS) and save it again")


def import_settings(request: ImportRequest, readout: str) -> dict:
    """The template, label words, positive label and name: flags first, then IMPORT_META_FILE; refuses a
    template without exactly one {email} and a label-word adapter without both label words."""
    meta = read_import_meta(request.folder)
    template = request.prompt_template if request.prompt_template is not None else meta.get("prompt_template")
    words = request.label_words if request.label_words is not None else meta.get("label_words")
    positive = request.positive_label if request.positive_label is not None else meta.get("positive_label", 1)
    name = request.name or meta.get("name") or Path(request.folder).resolve().name
    if template is None:
        raise ImportRefused(f"no prompt template for {request.folder}: give --prompt-template (or 'prompt_template' in "
                            f"{IMPORT_META_FILE}) with the text the adapter was trained on, {{email}} marking the email")
    if not isinstance(template, str) or template.count("{email}") != 1:
        raise ImportRefused("the prompt template must hold {email} exactly once (where the email's text goes); got "
                            f"{template!r}")
    if readout == LABEL_WORDS:
        if not isinstance(words, (list, tuple)) or len(words) != 2 or not all(isinstance(w, str) and w for w in words):
            raise ImportRefused(f"a causal-LM adapter is read at two label words, and {request.folder} was given "
                                f"{words!r}: give --negative-word and --positive-word (or 'label_words': "
                                f"[negative, positive] in {IMPORT_META_FILE}), spaces included as trained "
                                f"(e.g. ' no', ' yes')")
        words = tuple(words)
    else:
        words = ()
    if not isinstance(positive, int) or isinstance(positive, bool):
        raise ImportRefused(f"positive_label must be the head's label index of phishing/spam, not {positive!r}")
    return {"prompt_template": template, "label_words": words, "positive_label": positive, "name": str(name)}


FAMILY_NAMES = {"smollm": "llama", "llama": "llama", "gemma": "gemma", "mixtral": "mistral", "mistral": "mistral",
                "qwen": "qwen"}


def named_base_config(name: str) -> dict | None:
    """The config.json of the base model an adapter's config names, where it can be read without the
    network (a local folder, or the local hub cache); None otherwise."""
    if not name:
        return None
    path = Path(name) / "config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # not a valid hub id either
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_named_base(config: dict, base: "BaseParts") -> None:
    """Refuse an adapter whose config names a base model of another architecture (or hidden size) than the
    one it is imported onto. Two models can share every layer shape (then only this tells them apart)."""
    named = str(config.get("base_model_name_or_path") or "")
    how_to = (f"import it onto the model it was trained on, or, if {named!r} is only another name for this one, "
              f"set base_model_name_or_path in its adapter_config.json to {base.spec.source!r}")
    other = named_base_config(named)
    if other is not None:
        if other.get("model_type") != base.architecture:
            raise ImportRefused(f"the adapter was trained on {named} (architecture {other.get('model_type')}), "
                                f"not on a {base.architecture} model like {base.spec.name}: {how_to}")
        if other.get("hidden_size") not in (None, base.modules.config.hidden_size):
            raise ImportRefused(f"the adapter was trained on {named} (hidden size {other.get('hidden_size')}), but "
                                f"{base.spec.name}'s hidden size is {base.modules.config.hidden_size}: {how_to}")
        return
    lowered = named.lower()
    named_family = next((family for key, family in FAMILY_NAMES.items() if key in lowered), None)
    if named_family and named_family != base.spec.family:
        raise ImportRefused(f"the adapter names its base model {named!r}, a {named_family} model, but {base.spec.name} "
                            f"is a {base.spec.family} model: {how_to}")


def check_against_base(folder: Path, head: HeadShape | None, base: torch.nn.Module, positive: int) -> None:
    """Refuse an adapter made for another base model: target modules absent, another hidden size or
    rank, a head (None for a causal-LM adapter) that does not fit. Reads headers only."""
    if head is not None:
        hidden = base.config.hidden_size
        if head.hidden_size != hidden:
            raise ImportRefused(f"the adapter's classification head reads {head.hidden_size}-wide states, but the base "
                                f"model's hidden size is {hidden}: it was trained on another base model")
        if head.num_labels not in (1, 2):
            raise ImportRefused(f"the adapter's head has {head.num_labels} labels; PhishLens reads binary heads "
                                f"(2 labels, or 1 logit)")
        if head.num_labels == 2 and positive not in (0, 1):
            raise ImportRefused(f"positive_label {positive} is not a label of a 2-label head (0 or 1)")
    try:
        check_adapter_weights(folder, base)
    except AdapterMismatch as exc:
        raise ImportRefused(f"{folder} does not fit the base model: {exc}") from exc


@dataclass
class BaseParts:
    """What checking an adapter against a base model needs, without its weights in memory: the spec,
    folder, tokenizer, weights hash, architecture and the model's modules on the meta device."""

    spec: ModelSpec
    path: Path
    tokenizer: object
    weights_sha256: str
    architecture: str
    modules: torch.nn.Module


def base_model_parts(model: str, models_dir: Path, adapter_folder: Path) -> BaseParts:
    """The base model's parts (BaseParts); refuses a base that is not local (PhishLens never downloads)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    check_base_is_local(model, adapter_folder)
    spec = resolve_model(model)
    path = Path(prepare_model(spec, models_dir))
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except OSError as exc:
        raise ImportRefused(f"cannot read the base model {model!r}: {exc}") from exc
    if spec.source == str(path) and spec.family == "llama":
        spec = resolve_model(spec.name, config.model_type)
    with torch.device("meta"):
        modules = AutoModelForCausalLM.from_config(config)
    sha = weights_hash(path) if path.is_dir() else f"hub:{spec.source}"
    return BaseParts(spec, path, load_tokenizer(path), sha, config.model_type, modules)


SEAM_PROBE = "From: alerts@bank.example\nSubject: Verify your account\n\nClick the link below today."


def seam_warning(tokenizer, template: str) -> str | None:
    """Why the adapter may read other tokens than it was trained on, or None. PhishLens tokenizes the
    template's text and the email apart (so that the email alone is cut to the budget); a script that
    tokenized the whole prompt at once got other tokens where the two meet when, say, the template puts
    "Email: " right before the email (" From" is one token, " " + "From" two)."""
    head, tail = template.split("{email}")
    whole = tokenizer(template.replace("{email}", SEAM_PROBE), add_special_tokens=False).input_ids
    parts = [tokenizer(text, add_special_tokens=False).input_ids for text in (head, SEAM_PROBE, tail)]
    if whole == parts[0] + parts[1] + parts[2]:
        return None
    return ("the template's text next to {email} merges with the email's first or last token when the prompt is "
            "tokenized whole; PhishLens tokenizes them apart (to cut the email alone to the budget), so this adapter "
            "reads other tokens at that seam than a script that tokenized the whole prompt. Ending the text before "
            "{email} with a newline, and starting the text after it with one, avoids it")


def import_adapter(request: ImportRequest, models_dir: Path, adapters_dir: Path) -> AdapterInfo:
    """Check the folder against the base model, copy it under adapters_dir with its AdapterInfo, return the
    info (the caller records it in the store). Nothing is written unless every check passes."""
    from models.scoring import label_token_ids

    config = check_files(request.folder)
    readout = TASK_READOUTS[config.get("task_type")]
    chosen = import_settings(request, readout)
    base = base_model_parts(request.model, models_dir, request.folder)
    check_named_base(config, base)
    spec = replace(base.spec, prompt_template=chosen["prompt_template"],
                   label_words=chosen["label_words"] or base.spec.label_words, readout=readout)
    head = head_shape(request.folder) if readout == CLASSIFICATION_HEAD else None
    if head is None:
        try:
            label_token_ids(base.tokenizer, spec)
        except ValueError as exc:
            raise ImportRefused(f"{exc}: pick label words whose first tokens differ, as the adapter was trained") from exc
        model = base.modules
    else:
        model = sequence_classifier_modules(base.path, head.num_labels)
    check_against_base(request.folder, head, model, chosen["positive_label"])
    digest = sha256_file(Path(request.folder) / ADAPTER_WEIGHTS_FILE)
    name = chosen["name"]
    adapter_id = f"{base.spec.name}--imported-{_slug(name)}--{digest[:6]}"
    target = Path(adapters_dir) / _slug(adapter_id)
    info = AdapterInfo(
        id=adapter_id, model=base.spec.name, base_weights_sha256=base.weights_sha256, architecture=base.architecture,
        training_set=f"{IMPORTED_SET_PREFIX}{name}", path=str(target),
        hyperparameters={"imported": True, "task_type": config.get("task_type") or "CAUSAL_LM", "r": config.get("r"),
                         "alpha": config.get("lora_alpha"), "target_modules": config.get("target_modules"),
                         "positive_label": chosen["positive_label"],
                         "num_labels": head.num_labels if head else None,
                         "adapter_sha256": digest, "max_tokens": None,
                         "warning": seam_warning(base.tokenizer, chosen["prompt_template"])},
        seed=request.seed, train_loss=(), n_train=0, seconds=0.0,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        prompt_template=chosen["prompt_template"], label_words=chosen["label_words"], readout=readout,
        imported_from=str(Path(request.folder).resolve()))
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file_name in (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE):
        shutil.copy2(Path(request.folder) / file_name, tmp / file_name)
    (tmp / ADAPTER_INFO_FILE).write_text(json.dumps(asdict(info), indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return info


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:" else "-" for c in text).replace(":", "-")[:120]


# ---------------------------------------------------------------- opening a classification head


def sequence_classifier_modules(model_dir: Path, num_labels: int) -> torch.nn.Module:
    """The base model's sequence-classification twin on the meta device (names and shapes, no memory):
    what a SEQ_CLS adapter's names and shapes are checked against."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_dir, num_labels=num_labels)
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def open_head_adapter(base: LoadedModel, model_dir: Path, adapter_dir: Path, info: AdapterInfo) -> LoadedModel:
    """A SEQ_CLS adapter on `base` (consumed), as a causal LM whose score is the head's logit difference.

    The sequence classifier shares the causal LM's backbone (no second copy): peft loads the LoRA
    weights and the head into it, merges them, and the head's rows become HEAD_ROWS of a fresh
    unembedding."""
    from peft import PeftModel

    head = head_shape(adapter_dir)
    causal = base.model
    classifier = sequence_classifier_modules(model_dir, head.num_labels)
    setattr(classifier, classifier.base_model_prefix, getattr(causal, causal.base_model_prefix))
    classifier.score = torch.nn.Linear(head.hidden_size, head.num_labels, bias=head.has_bias,
                                       device=base.device, dtype=base.dtype)
    classifier.config.pad_token_id = base.tokenizer.pad_token_id
    try:
        check_adapter_weights(adapter_dir, classifier)
    except AdapterMismatch as exc:
        raise ModelError(f"cannot load adapter {info.id!r}: refused, {exc}") from exc
    try:
        merged = PeftModel.from_pretrained(classifier, adapter_dir, is_trainable=False).merge_and_unload()
    except Exception as exc:
        raise ModelError(f"cannot load adapter {adapter_dir}: {type(exc).__name__}: {exc}") from exc
    head_as_unembedding(causal, merged.score, int(info.hyperparameters.get("positive_label", 1)))
    causal.eval()
    spec = scorer_spec(base.spec, info)
    return LoadedModel(spec, causal, base.tokenizer, base.device, base.dtype, base.weights_sha256,
                       base.architecture, info)


def head_as_unembedding(causal: torch.nn.Module, score: torch.nn.Linear, positive: int) -> None:
    """Replace the causal LM's unembedding (untied from the embedding) by one that is zero but for
    HEAD_ROWS, which hold the head's (negative, positive) rows: logit[HEAD_ROWS[1]] − logit[HEAD_ROWS[0]]
    is then the head's logit difference. A 1-logit head is its own difference (its negative row is 0).
    The head is not soft-capped, so neither is this unembedding (Gemma 2's final_logit_softcapping)."""
    hidden, vocab = score.in_features, causal.get_output_embeddings().out_features
    unembedding = torch.nn.Linear(hidden, vocab, bias=score.bias is not None,
                                  device=score.weight.device, dtype=score.weight.dtype)
    with torch.no_grad():
        unembedding.weight.zero_()
        rows = [1 - positive, positive] if score.out_features == 2 else [None, 0]
        for target, row in zip(HEAD_ROWS, rows):
            if row is not None:
                unembedding.weight[target] = score.weight[row]
        if score.bias is not None:
            unembedding.bias.zero_()
            for target, row in zip(HEAD_ROWS, rows):
                if row is not None:
                    unembedding.bias[target] = score.bias[row]
    unembedding.requires_grad_(False)
    causal.set_output_embeddings(unembedding)
    causal.config.tie_word_embeddings = False
    if getattr(causal.config, "final_logit_softcapping", None):
        causal.config.final_logit_softcapping = None
