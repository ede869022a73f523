"""Model registry, loading (GPU/CPU), batched label-token scoring and LoRA fine-tuning."""

import logging

# torchao (int8 scoring) is imported by peft and transformers whenever it is installed; on a
# CPU-only machine it logs a warning per CUDA kernel library it cannot load, and torch one per
# enum it registers. Neither matters here, and both would greet every command.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
