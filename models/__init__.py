"""Model registry, loading (GPU/CPU), batched label-token scoring and LoRA fine-tuning."""
