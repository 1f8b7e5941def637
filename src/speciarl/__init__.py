"""speciarl: specificity-aware reinforcement learning of vision-language models (SpeciaRL)."""
