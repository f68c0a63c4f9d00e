"""The package version, importable from anywhere in packer without importing the package."""

__version__ = "0.2.0"
