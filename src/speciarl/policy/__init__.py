"""The policy: model and processor loading (pretrained, LoRA, tiny), prompts to tensors, log-probs."""
