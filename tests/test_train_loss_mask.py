"""The loss mask of the SFT recipe, checked token by token through TRL's real tokenization and collator."""

from pathlib import Path

import pytest

from hf_s1.data import answer_text, load_s1k, to_messages
from hf_s1.formats import get_format, marker_tokens
from hf_s1.train.sft import S1KScriptArguments, build_train_dataset, prepare_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "s1k"


def _trainer_batch(model_dir, tmp_path, script_args):
    from trl import SFTConfig, SFTTrainer

    tokenizer = prepare_tokenizer(str(model_dir))
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", assistant_only_loss=True,
                     max_length=4096, per_device_train_batch_size=4)
    trainer = SFTTrainer(model=str(model_dir), args=args, train_dataset=build_train_dataset(script_args),
                         processing_class=tokenizer)
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    return tokenizer, rows, trainer.data_collator(rows)


@pytest.mark.parametrize("think_format", ["s1", "r1"])
@pytest.mark.parametrize("system_prompt", [None, "You are a careful mathematician."])
def test_labels_cover_exactly_think_and_answer(tiny_model_dir, tmp_path, think_format, system_prompt):
    script_args = S1KScriptArguments(dataset_name=str(FIXTURES / "s1k_rows.jsonl"), think_format=think_format,
                                     system_prompt=system_prompt)
    tokenizer, rows, batch = _trainer_batch(tiny_model_dir, tmp_path, script_args)
    fmt = get_format(think_format)
    markers = marker_tokens(tokenizer, fmt)
    source_rows = load_s1k(FIXTURES / "s1k_rows.jsonl")
    assert len(rows) == source_rows.num_rows == 4
    for i, source in enumerate(source_rows):
        messages = to_messages(source, think_format=think_format, system_prompt=system_prompt)
        assistant = messages[-1]["content"]
        # Independent expectation: prompt tokens (template up to the assistant header), then the assistant turn.
        prompt_ids = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        target_ids = tokenizer.encode(assistant + tokenizer.eos_token, add_special_tokens=False)
        ids = batch["input_ids"][i].tolist()
        labels = batch["labels"][i].tolist()
        n = int(batch["attention_mask"][i].sum())
        assert ids[: len(prompt_ids)] == prompt_ids
        span = range(len(prompt_ids), len(prompt_ids) + len(target_ids))
        assert ids[span.start : span.stop] == target_ids
        for pos in range(len(ids)):
            expected = ids[pos] if pos in span else -100
            assert labels[pos] == expected, (i, pos, tokenizer.decode([ids[pos]]))
        # After the labelled span only the template's newline (and padding) remains.
        assert tokenizer.decode(ids[span.stop : n]) == "\n"
        # The labelled text is exactly the think + answer turn in the format's markers, ending the turn.
        labelled = [t for t, l in zip(ids, labels) if l != -100]
        trace = source["thinking_trajectories"][0].strip()
        assert tokenizer.decode(labelled) == fmt.assistant_text(trace, answer_text(source["attempt"].strip())) + "<|im_end|>"
        assert tuple(labelled[: len(markers.think_start)]) == markers.think_start
        end = markers.think_end
        assert any(tuple(labelled[j : j + len(end)]) == end for j in range(len(labelled))), "think-end marker unlabelled"
        if system_prompt is not None:
            assert system_prompt in tokenizer.decode(ids[: span.start])


def test_training_template_keeps_the_models_default_system_prompt(tiny_model_dir):
    from transformers import AutoTokenizer

    from hf_s1.train import chat_template_default_system, training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    original = tokenizer.chat_template
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<|im_start|>think\nx\n<|im_start|>answer\ny"}]
    template = training_chat_template(tokenizer)
    assert tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template) == \
        tokenizer.apply_chat_template(messages, tokenize=False, chat_template=original)
    assert chat_template_default_system(tokenizer) == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def test_training_template_for_qwen25_renders_like_qwen(tiny_model_dir):
    """Qwen2.5's own template (shipped with TRL) gets a marker template with Qwen's default system prompt."""
    from importlib import resources

    from transformers import AutoTokenizer

    from hf_s1.train import chat_template_default_system, training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = (resources.files("trl") / "chat_templates" / "qwen2_5.jinja").read_text()
    assert chat_template_default_system(tokenizer) == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    template = training_chat_template(tokenizer)
    row = to_messages({"question": "1+1?", "thinking_trajectories": ["1+1=2"], "attempt": "2"})
    out = tokenizer.apply_chat_template(row, chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    assert tokenizer.apply_chat_template(row, tokenize=False) == tokenizer.decode(out["input_ids"])
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(masked) == "<|im_start|>think\n1+1=2\n<|im_start|>answer\nAnswer: 2<|im_end|>"


def test_template_without_chatml_or_markers_is_a_typed_error(tiny_model_dir):
    from transformers import AutoTokenizer

    from hf_s1.data import DataError
    from hf_s1.train import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(DataError, match="generation"):
        training_chat_template(tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(DataError, match="no chat template"):
        training_chat_template(tokenizer)
