#!/usr/bin/env python3
"""PEFT gradient fixtures for acdtcm's LoRA trainer (issue #6), for both exchange adapters.

Needs torch + transformers + PEFT (on a machine without PyPI: scripts/pyshim/README.md):

    go run ./cmd/acdtcm model init --preset tiny --seed 7 --out /tmp/qwen-tiny
    scripts/pyref-env.sh python3 scripts/peft-reference/peft_gradients.py /tmp/qwen-tiny

For each adapter of internal/qwen/testdata/peft (acdtcm-adapter: written by acdtcm;
peft-adapter: made and saved by PEFT, rsLoRA + rank/alpha patterns; see peft_exchange.py), it
loads the adapter with PeftModel.from_pretrained(is_trainable=True) on the tiny seed-7
checkpoint, computes the loss acdtcm's LoRA trainer (internal/train) computes for one training
sample, calls backward and writes the gradient of every LoRA A and B tensor.

The sample is what `acdtcm train` builds from a graded manifest record (qwen.GradingMessages with
qwen.GradingAnswer): the grading system prompt, the photo + grading question, and the answer.
Labels follow qwen.Model.Labels (LLaMA-Factory / ms-swift): every token is -100 except the
assistant answer and its <|im_end|> (not the final "\n"). Two losses (float32, eager attention,
every dropout 0; the model is put in eval mode, which with zero dropout computes the same as
train mode):

  lm        transformers' own Qwen2_5_VLForConditionalGeneration loss for these labels: mean
            next-token cross-entropy over the supervised tokens (the trainer with
            grade_loss_weight 0).
  lm_grade  lm + GRADE_WEIGHT * the trainer's grade-token loss (qwen.gradeLoss): at the position
            whose next token is the answer's first (the grade digit), a softmax over the logits
            of the grade tokens "0".."3" only, cross-entropy against the grade with label
            smoothing, weighted by the grade's class weight (weighted mean over the batch). These
            are the trainer's defaults (configs/train-qwen-lora.yaml).

Vision-tower adapters get gradients here as well (the whole model is differentiated). The Go
test runs acdtcm's trainer both ways: training the language model's adapters only (the vision
tower frozen outside the graph, the default), compared with those gradients, and training every
adapter with the tower inside the graph (what it does when the adapter has vision modules),
compared with all of them.

Outputs, per adapter NAME, in internal/qwen/testdata/peft:
  NAME-grad.json         the sample (texts, ids, labels), grade settings, the losses, versions
  NAME-grad.safetensors  float32 gradients, keyed "<loss>/<adapter key>", e.g.
                         "lm/base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"
                         (the adapter file's key: the transformers 4.50 module names)
internal/train's TestLoRAGradientsMatchPEFT compares the trainer's gradients with them.
"""
import json
import os
import sys

import torch
from PIL import Image
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qwen-reference"))
from refckpt import reference_dir  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "internal", "qwen", "testdata", "peft")
ADAPTERS = ["acdtcm-adapter", "peft-adapter"]
IMAGE = "internal/qwen/testdata/imageproc/wide-down.png"
BASE_NAME = "acdtcm model init --preset tiny --seed 7"

# qwen.GradingSystemPrompt, qwen.GradingQuestion, and qwen.GradingAnswer(2, severity.Hayashi,
# {comedone: 12, papule: 7, pustule: 3}, "lung-stomach heat"); the Go test checks they are still
# what acdtcm renders.
SYSTEM = (
    "You are a dermatology assistant that grades acne severity from face photos and explains "
    "findings, including Traditional Chinese Medicine syndrome differentiation. You do not prescribe."
)
QUESTION = (
    "Grade the acne severity in this photo on the Hayashi scale (0 mild, 1 moderate, 2 severe, "
    "3 very severe). Answer with the grade number first, then the lesion findings."
)
GRADE = 2
COUNTS = {"comedone": 12, "papule": 7, "pustule": 3}
SYNDROME = "lung-stomach heat"
ANSWER = (
    "2\nSeverity: severe (重度) on the hayashi scale.\n"
    "Lesions: comedones 12, papules 7, pustules 3, nodules 0.\n"
    "TCM syndrome: lung-stomach heat."
)
# The trainer's defaults (train.DefaultLoRAConfig): grade_loss_weight, label_smoothing,
# class_weights; the grade tokens are the digits of the Hayashi scale.
GRADE_WEIGHT = 1.0
LABEL_SMOOTHING = 0.1
CLASS_WEIGHTS = [1.0, 2.0, 3.0, 4.0]
IGNORE = -100


def load_base(ckpt):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(
        ckpt, torch_dtype=torch.float32, attn_implementation="eager"
    )


def sample(processor):
    """The processor inputs of the whole conversation and the trainer's labels."""
    image = Image.open(os.path.join(ROOT, IMAGE)).convert("RGB")
    chat = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
    ]
    answer = {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}
    full = processor.apply_chat_template(chat + [answer], tokenize=False)
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[full], images=[image], return_tensors="pt")
    prompt_ids = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    ids = inputs["input_ids"][0].tolist()
    tok = processor.tokenizer
    im_end, newline = tok.convert_tokens_to_ids("<|im_end|>"), tok.encode("\n")
    if ids[: len(prompt_ids)] != prompt_ids:
        raise SystemExit("the prompt's tokens are not a prefix of the conversation's")
    if ids[-2:] != [im_end] + newline:
        raise SystemExit(f"the conversation does not end with <|im_end|>\\n: {ids[-4:]}")
    # Supervised: the answer and its <|im_end|>; not the prompt, not the template's final "\n".
    labels = [IGNORE] * len(prompt_ids) + ids[len(prompt_ids) : -1] + [IGNORE]
    inputs["labels"] = torch.tensor([labels])
    return inputs


def grade_token_ids(tokenizer):
    ids = []
    for g in range(len(CLASS_WEIGHTS)):
        enc = tokenizer.encode(str(g))
        if len(enc) != 1:
            raise SystemExit(f"grade {g} is not one token: {enc}")
        ids.append(enc[0])
    return ids


def grade_loss(logits, labels, grade_ids):
    """qwen.gradeLoss for a batch of one: label-smoothed, class-weighted cross-entropy over the
    grade tokens' logits at the first position whose next-token label is supervised."""
    pos = next(s for s in range(labels.shape[1] - 1) if labels[0, s + 1] != IGNORE)
    logp = torch.log_softmax(logits[0, pos, grade_ids], dim=-1)
    K = len(grade_ids)
    onehot = torch.nn.functional.one_hot(torch.tensor(GRADE), K).to(logp.dtype)
    target = onehot * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / K
    w = (onehot * torch.tensor(CLASS_WEIGHTS, dtype=logp.dtype)).sum()
    return (-(target * logp).sum() * w) / w, pos


def lora_gradients(model):
    out = {}
    for name, p in model.named_parameters():
        if ".lora_" in name:
            if p.grad is None:
                raise SystemExit(f"{name} has no gradient")
            out[name.replace(".default.weight", ".weight")] = p.grad.detach().float().clone().contiguous()
    return out


def check_loaded(model, adapter_dir):
    state = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    params = dict(model.named_parameters())
    for key, want in state.items():
        p = params.get(key.replace(".weight", ".default.weight"))
        if p is None or not torch.equal(p.detach(), want):
            raise SystemExit(f"{adapter_dir}: {key} not loaded as saved")
        if not p.requires_grad:
            raise SystemExit(f"{adapter_dir}: {key} is not trainable")
    if sum(".lora_" in n for n in params) != len(state):
        raise SystemExit(f"{adapter_dir}: model and file have different LoRA tensors")


def gradients(ckpt, name, inputs, grade_ids):
    adapter = os.path.join(OUT, name)
    model = PeftModel.from_pretrained(load_base(ckpt), adapter, is_trainable=True)
    check_loaded(model, adapter)
    qwen = model.base_model.model
    cfg = model.peft_config["default"]
    if cfg.lora_dropout != 0 or qwen.config.attention_dropout != 0 or qwen.config.vision_config.to_dict().get("attention_dropout", 0) != 0:
        raise SystemExit("the fixture needs every dropout at 0")
    model.eval()  # all dropout is 0, so this equals train mode; eval also fixes nothing random
    losses, grads, grade_pos = {}, {}, None
    for loss_name in ["lm", "lm_grade"]:
        model.zero_grad(set_to_none=True)
        out = model(**inputs)
        loss = out.loss
        if loss_name == "lm_grade":
            g, grade_pos = grade_loss(out.logits.float(), inputs["labels"], grade_ids)
            loss = loss + GRADE_WEIGHT * g
        loss.backward()
        losses[loss_name] = loss.item()
        for key, grad in lora_gradients(model).items():
            grads[f"{loss_name}/{key}"] = grad
    save_file(grads, os.path.join(OUT, name + "-grad.safetensors"))
    labels = inputs["labels"][0].tolist()
    fixture = {
        "checkpoint": BASE_NAME,
        "adapter": name,
        "image": IMAGE,
        "system": SYSTEM,
        "question": QUESTION,
        "answer": ANSWER,
        "grade": GRADE,
        "lesion_counts": COUNTS,
        "syndrome": SYNDROME,
        "input_ids": inputs["input_ids"][0].tolist(),
        "labels": labels,
        "image_grid_thw": inputs["image_grid_thw"][0].tolist(),
        "grade_token_ids": grade_ids,
        "grade_position": grade_pos,
        "grade_loss_weight": GRADE_WEIGHT,
        "label_smoothing": LABEL_SMOOTHING,
        "class_weights": CLASS_WEIGHTS,
        "losses": losses,
        "versions": {
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "peft": __import__("peft").__version__,
        },
    }
    with open(os.path.join(OUT, name + "-grad.json"), "w") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
    n = len(grads) // len(losses)
    print(f"wrote {name}-grad.json/.safetensors: {n} LoRA tensors, losses {losses}, {sum(l != IGNORE for l in labels)} supervised tokens")


def main():
    torch.manual_seed(0)
    ckpt = reference_dir(sys.argv[1])
    processor = AutoProcessor.from_pretrained(ckpt, use_fast=False)
    inputs = sample(processor)
    grade_ids = grade_token_ids(processor.tokenizer)
    for name in ADAPTERS:
        gradients(ckpt, name, inputs, grade_ids)


if __name__ == "__main__":
    main()
