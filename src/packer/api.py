"""The library's front door: everything the ``pack`` command can do, as Python functions.

The CLI calls only these; each lives in the module that owns its job (``conversion``, ``pack``,
``describe``, ``verify``, ``extract``, ``bench``). Importing this module loads the converter and
reader (numpy, not Pillow or torch).
"""

from __future__ import annotations

from packer._version import __version__
from packer.backends.registry import list_formats
from packer.bench.report import METRICS, BenchReport, recommendation_line
from packer.bench.run import bench
from packer.check.local import Problem, VerifyReport, verify_pack
from packer.conversion.driver import convert
from packer.conversion.parts import convert_part, merge, save_plan
from packer.conversion.report import ConvertReport
from packer.conversion.samples import convert_samples
from packer.conversion.update import Changes, status
from packer.images.transforms import Transform
from packer.read.describe import inspect_pack
from packer.read.extract import ExtractReport, extract
from packer.read.pack import Pack, Sample, open_pack
from packer.storage.stage import StageReport, stage

__all__ = [
    "METRICS",
    "BenchReport",
    "Changes",
    "ConvertReport",
    "ExtractReport",
    "Pack",
    "Problem",
    "Sample",
    "StageReport",
    "Transform",
    "VerifyReport",
    "__version__",
    "bench",
    "convert",
    "convert_part",
    "convert_samples",
    "extract",
    "inspect_pack",
    "list_formats",
    "merge",
    "open_pack",
    "recommendation_line",
    "save_plan",
    "stage",
    "status",
    "verify_pack",
]
