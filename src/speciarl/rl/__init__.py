"""The RL algorithm: rewards, advantages, policy losses, collection of scored rollouts, the update."""
