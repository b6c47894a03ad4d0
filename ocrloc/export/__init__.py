"""TorchScript export (SPEC section 8)."""

from ocrloc.export.torchscript import ExportedDetector, export_torchscript

__all__ = ["ExportedDetector", "export_torchscript"]
