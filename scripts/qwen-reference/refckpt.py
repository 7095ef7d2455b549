"""Make an acdtcm checkpoint directory loadable by transformers' *slow* Qwen2 tokenizer.

`acdtcm model init` writes only tokenizer.json (the fast-tokenizer file) and no chat template.
Real Qwen2.5-VL repositories also carry vocab.json + merges.txt (what the pure-Python
Qwen2Tokenizer reads), the added tokens in tokenizer_config.json, and chat_template.json.
reference_dir() returns a directory with those files added, derived from the checkpoint's own
tokenizer.json (same vocabulary, merges and added tokens); weights and configs are symlinked, so
the model transformers loads is byte-for-byte the one acdtcm wrote. A directory that already has
the files (a real Qwen checkpoint) is returned unchanged.
"""
import json
import os
import tempfile

# Qwen2.5-VL-*-Instruct's chat_template.json (the template acdtcm's tokenizer.RenderChat follows).
QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def reference_dir(ckpt):
    ckpt = os.path.abspath(ckpt)
    have = set(os.listdir(ckpt))
    chat = {"chat_template.json", "chat_template.jinja"} & have
    if {"vocab.json", "merges.txt"} <= have and chat:
        return ckpt
    out = tempfile.mkdtemp(prefix="acdtcm-ref-")
    for name in have:
        if name != "tokenizer_config.json":
            os.symlink(os.path.join(ckpt, name), os.path.join(out, name))
    with open(os.path.join(ckpt, "tokenizer.json")) as f:
        tok = json.load(f)
    model = tok["model"]
    if model.get("type") != "BPE":
        raise SystemExit(f"{ckpt}/tokenizer.json: model type {model.get('type')}, want BPE")
    if "vocab.json" not in have:
        with open(os.path.join(out, "vocab.json"), "w") as f:
            json.dump(model["vocab"], f, ensure_ascii=False)
    if "merges.txt" not in have:
        with open(os.path.join(out, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n")
            for m in model.get("merges", []):
                f.write((m if isinstance(m, str) else " ".join(m)) + "\n")
    with open(os.path.join(ckpt, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    cfg.setdefault("added_tokens_decoder", {})
    for t in tok.get("added_tokens", []):
        cfg["added_tokens_decoder"].setdefault(
            str(t["id"]), {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        )
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    if not chat:
        with open(os.path.join(out, "chat_template.json"), "w") as f:
            json.dump({"chat_template": QWEN25VL_CHAT_TEMPLATE}, f)
    return out
