#!/usr/bin/env python3
"""PEFT exchange fixtures for acdtcm's LoRA (issue #6), both directions, on the tiny checkpoint.

Needs torch + transformers + PEFT (on a machine without PyPI: scripts/pyshim/README.md):

    go run ./cmd/acdtcm model init --preset tiny --seed 7 --out /tmp/qwen-tiny
    scripts/pyref-env.sh python3 scripts/peft-reference/peft_exchange.py /tmp/qwen-tiny

(a) internal/qwen/testdata/peft/acdtcm-adapter/ was written by acdtcm (Go test
    TestAcdtcmAdapterFixtureIsCurrent, ACDTCM_WRITE_PEFT_FIXTURE=1). It is loaded with
    peft.PeftModel.from_pretrained; every LoRA matrix PEFT holds is checked against the file, and
    PEFT's outputs go to acdtcm-adapter.json.
(b) An adapter is made with PEFT itself: get_peft_model with a seeded LoraConfig (rsLoRA, a
    rank_pattern and an alpha_pattern, language-model and vision-block targets), B filled with
    seeded normal values so it changes the output, saved with save_pretrained to peft-adapter/
    (adapter_config.json + adapter_model.safetensors); PEFT's outputs go to peft-adapter.json,
    after checking that PeftModel.from_pretrained of the saved files reproduces them exactly.

Each .json holds, for the parity prompt (one image + question with the chat template): prompt
ids, image grid, merged vision features, last-position logits, an 8-token greedy continuation
and the adapted module names. internal/qwen's TestPEFTLoadsAcdtcmAdapter and
TestAcdtcmLoadsPEFTAdapter compare acdtcm with them. peft_gradients.py computes PEFT's LoRA
gradients with both adapters; rerun it after this script.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qwen-reference"))
from refckpt import reference_dir  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "internal", "qwen", "testdata", "peft")
IMAGE = "internal/qwen/testdata/imageproc/wide-down.png"
QUESTION = "Grade the acne."
BASE_NAME = "acdtcm model init --preset tiny --seed 7"


def load_base(ckpt):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(
        ckpt, torch_dtype=torch.float32, attn_implementation="eager"
    ).eval()


def prompt_inputs(processor):
    image = Image.open(os.path.join(ROOT, IMAGE)).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[image], return_tensors="pt")


def adapted_modules(peft_model):
    prefix = "base_model.model."
    names = [n[len(prefix):] for n, mod in peft_model.named_modules() if isinstance(mod, LoraLayer)]
    return sorted(names)


def run(peft_model, inputs):
    """The parity fixture's measurements, through the PEFT-wrapped model."""
    qwen = peft_model.base_model.model
    with torch.no_grad():
        pixel = inputs["pixel_values"].to(torch.float32)
        grid = inputs["image_grid_thw"]
        features = qwen.visual(pixel, grid_thw=grid)
        logits = peft_model(**inputs).logits[0, -1].float().numpy()
        gen = peft_model.generate(**inputs, max_new_tokens=8, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    return {
        "checkpoint": BASE_NAME,
        "question": QUESTION,
        "image": IMAGE,
        "input_ids": inputs["input_ids"][0].tolist(),
        "image_grid_thw": grid[0].tolist(),
        "vision_features": np.asarray(features.float()).round(7).tolist(),
        "last_logits": logits.round(7).tolist(),
        "greedy_ids": gen[0, prompt_len:].tolist(),
        "adapted_modules": adapted_modules(peft_model),
        "versions": {
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "peft": __import__("peft").__version__,
        },
    }


def check_loaded(peft_model, adapter_dir):
    """Every tensor of the adapter file is in the model, unchanged (PEFT only warns on misses)."""
    state = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    params = dict(peft_model.named_parameters())
    for key, want in state.items():
        name = key.replace(".weight", ".default.weight")
        if name not in params:
            raise SystemExit(f"{adapter_dir}: PEFT did not load {key}")
        if not torch.equal(params[name].detach(), want):
            raise SystemExit(f"{adapter_dir}: {key} differs after loading")
    lora_params = [n for n in params if ".lora_" in n]
    if len(lora_params) != len(state):
        raise SystemExit(f"{adapter_dir}: model has {len(lora_params)} LoRA tensors, file {len(state)}")


def write(name, fixture):
    path = os.path.join(OUT, name + ".json")
    with open(path, "w") as f:
        json.dump(fixture, f)
    print("wrote", os.path.relpath(path, ROOT), "-", len(fixture["adapted_modules"]), "adapted modules")


def acdtcm_to_peft(ckpt, processor, inputs):
    adapter = os.path.join(OUT, "acdtcm-adapter")
    model = PeftModel.from_pretrained(load_base(ckpt), adapter).eval()
    check_loaded(model, adapter)
    write("acdtcm-adapter", run(model, inputs))


def peft_to_acdtcm(ckpt, processor, inputs):
    torch.manual_seed(6)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "attn.proj"],
        use_rslora=True,
        rank_pattern={"down_proj": 2},
        alpha_pattern={"qkv": 16},
        init_lora_weights=True,
    )
    model = get_peft_model(load_base(ckpt), config)
    g = torch.Generator().manual_seed(66)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ".lora_B." in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    model.eval()
    model.peft_config["default"].base_model_name_or_path = BASE_NAME
    adapter = os.path.join(OUT, "peft-adapter")
    model.save_pretrained(adapter)
    card = os.path.join(adapter, "README.md")  # PEFT's model card template; not part of the format
    if os.path.exists(card):
        os.remove(card)
    fixture = run(model, inputs)
    reloaded = PeftModel.from_pretrained(load_base(ckpt), adapter).eval()
    check_loaded(reloaded, adapter)
    again = run(reloaded, inputs)
    if again != fixture:
        raise SystemExit("PEFT's reloaded adapter gives different outputs than the one it saved")
    write("peft-adapter", fixture)


def main():
    ckpt = reference_dir(sys.argv[1])
    processor = AutoProcessor.from_pretrained(ckpt, use_fast=False)
    inputs = prompt_inputs(processor)
    os.makedirs(OUT, exist_ok=True)
    acdtcm_to_peft(ckpt, processor, inputs)
    peft_to_acdtcm(ckpt, processor, inputs)


if __name__ == "__main__":
    main()
