"""Safe, compact model files: safetensors with packed sparse tensors, ONNX, Hugging Face."""

from secateurs.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]
