"""Rollout backends behind one interface: Hugging Face generate (hf, seeded) and vLLM."""
