"""Times a ResNet-50 training step (16 photos at 224 px, forward and backward to the pooled
features) on the CPU in float32, under bfloat16 autocast, and in float32 channels-last: the
measurement behind ldl_resnet50.py's bf16 default (BENCHMARKS.md, "The published recipe
itself, re-run here"). Prints seconds per step, three steps per mode (the first warms up).

    RESNET_DIR=/tmp/resnet50 /usr/bin/python3 scripts/grader-experiments/pretrained-probe/step_speed.py"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnv2  # noqa: E402
import resnet50  # noqa: E402

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
weights, layers = resnet50.load(os.environ.get("RESNET_DIR", "/tmp/resnet50"))
params = {k: v if k.endswith(("moving_mean", "moving_variance")) else torch.nn.Parameter(v) for k, v in weights.items()}
x = torch.rand(16, 3, 224, 224) * 255
for mode in ["fp32", "bf16", "channels_last"]:
    for it in range(3):
        t0 = time.time()
        xx = resnet50.preprocess(x)
        if mode == "channels_last":
            xx = xx.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            f = mnv2.run(layers, params.get, xx, upto_pool=True)
        f.float().mean((2, 3)).pow(2).sum().backward()
        print(mode, it, round(time.time() - t0, 2), flush=True)
