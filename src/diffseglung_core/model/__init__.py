"""The 3D diffusion U-Net, its forward process, samplers and distillation heads."""

from .config import DiffusionConfig, DistillConfig, ModelConfig, UNetConfig
from .diffusion import Diffusion
from .unet import UNet3D

__all__ = ["DiffusionConfig", "DistillConfig", "ModelConfig", "UNetConfig", "Diffusion", "UNet3D"]
