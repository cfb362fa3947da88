"""Training of the diffusion model (stage 1) and radiomic distillation (stage 2)."""
