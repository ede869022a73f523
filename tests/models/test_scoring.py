import numpy as np
import torch

from data.records import Email
from models.loading import load_base, pick_device
from models.registry import resolve_model
from models.scoring import PromptBuilder, label_token_ids, length_buckets, pad_left, score_emails


def _email(body: str, subject: str = "hello") -> Email:
    return Email(id=body[:8], corpus="t", subject=subject, body=body, label=0)


def test_label_words_are_distinct_single_tokens(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    assert negative != positive


def test_truncation_cuts_the_email_never_the_question(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, max_tokens=64)
    long = builder.build(_email("word " * 500))
    assert len(long.input_ids) == 64 and long.truncated_tokens > 0
    assert long.input_ids[-len(builder.tail):] == builder.tail
    short = builder.build(_email("hi"))
    assert short.truncated_tokens == 0 and len(short.input_ids) < 64


def test_batched_left_padded_scores_equal_one_at_a_time(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    emails = [_email("short one"), _email("a much longer email body " * 12), _email("medium length text " * 3)]
    batched = score_emails(loaded, emails, max_tokens=128, batch_size=3)
    single = np.array([score_emails(loaded, [m], max_tokens=128, batch_size=1)[0] for m in emails])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    assert len(set(np.round(batched, 5))) == 3  # different emails, different scores


def test_scores_are_the_label_logit_difference_of_a_plain_forward(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    mail = _email("verify your account now")
    ids = PromptBuilder(loaded.tokenizer, loaded.spec, 128).build(mail).input_ids
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    expected = float(logits[positive] - logits[negative])
    assert abs(score_emails(loaded, [mail], 128)[0] - expected) < 1e-4


def test_pad_left_positions_count_real_tokens_only():
    batch = pad_left([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]


def test_length_buckets_group_similar_lengths():
    buckets = length_buckets([5, 100, 6, 99, 50], batch_size=2)
    assert buckets == [[1, 3], [4, 2], [0]]


def test_cpu_uses_fp32():
    device, dtype = pick_device("cpu")
    assert device.type == "cpu" and dtype == torch.float32


def test_unknown_model_family_defaults_and_registry():
    assert resolve_model("smollm2-135m").family == "llama"
    assert resolve_model("google/gemma-2-9b", "gemma2").family == "gemma"
    assert resolve_model("mistralai/Mistral-7B-v0.1", "mistral").family == "mistral"


def test_the_default_learning_rate_is_the_familys(tmp_path):
    import json

    from data.records import LoraSettings
    from models.registry import default_lora_lr

    assert default_lora_lr("gemma3-270m") == 1e-3 < default_lora_lr("smollm2-135m") == LoraSettings.lr
    local = {}
    for model_type in ("gemma3_text", "llama"):  # a local folder's family is read from its config
        (tmp_path / model_type).mkdir()
        (tmp_path / model_type / "config.json").write_text(json.dumps({"model_type": model_type}))
        local[model_type] = default_lora_lr(str(tmp_path / model_type))
    assert local == {"gemma3_text": 1e-3, "llama": LoraSettings.lr}
    assert default_lora_lr("someone/unknown-model") == LoraSettings.lr


def test_in_context_examples_precede_the_email_in_the_same_template(tiny_model_dir, settings):
    from data.records import Demonstration

    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    tokenizer = loaded.tokenizer
    plain = PromptBuilder(tokenizer, loaded.spec, max_tokens=64)
    demos = (Demonstration("From: a\nSubject: invoice\n\n" + "pay now " * 100, 1),
             Demonstration("From: b\nSubject: lunch\n\nsee you at noon", 0))
    builder = PromptBuilder(tokenizer, loaded.spec, max_tokens=64, demonstrations=demos, context_tokens=20)
    answers = [tokenizer(w, add_special_tokens=False).input_ids for w in loaded.spec.label_words]
    # head = [BOS] + (template head, example cut to 20 tokens, template tail, its answer, blank line) × 2 + template head
    first = tokenizer(demos[0].text, add_special_tokens=False).input_ids[:20]
    second = tokenizer(demos[1].text, add_special_tokens=False).input_ids
    expected = plain.template_head + first + plain.tail + answers[1]
    start = len(plain.bos)
    assert builder.head[start: start + len(expected)] == expected
    assert builder.head[-len(plain.template_head):] == plain.template_head
    assert builder.head.count(answers[0][0]) >= 1 and len(second) < 20
    # the email under test keeps its own budget, and its prompt ends with the question as before
    mail = _email("word " * 500)
    with_context, without = builder.build(mail), plain.build(mail)
    assert with_context.input_ids == builder.head + without.input_ids[len(plain.head):]
    assert with_context.truncated_tokens == without.truncated_tokens > 0
    # examples passed to build() replace the builder's own (FTICL training draws them per email)
    no_examples = PromptBuilder(tokenizer, loaded.spec, max_tokens=64, context_tokens=20)
    assert no_examples.build(mail, demos).input_ids == with_context.input_ids


def test_compiled_scorer_gives_the_eager_scores(tiny_model_dir, settings):
    from models.scoring import compiled_for_scoring

    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    emails = [_email("short one"), _email("a much longer email body " * 12), _email("medium length text " * 3),
              _email("another " * 30)]
    eager = score_emails(loaded, emails, max_tokens=128, batch_size=2)
    compiled = score_emails(compiled_for_scoring(loaded), emails, max_tokens=128, batch_size=2)  # two lengths, one graph
    np.testing.assert_allclose(compiled, eager, atol=1e-4)
