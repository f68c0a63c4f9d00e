"""The library's front door: everything the ``pack`` command can do, as Python functions.

The CLI calls only these; each lives in the module that owns its job (``conversion``, ``pack``,
``describe``, ``verify``, ``extract``, ``bench``). Importing this module loads the converter and
reader (numpy, not Pillow or torch).
"""

from __future__ import annotations

from packer._version import __version__
from packer.bench import bench
from packer.bench_report import METRICS, BenchReport, recommendation_line
from packer.conversion import convert
from packer.conversion_report import ConvertReport
from packer.describe import inspect_pack
from packer.extract import ExtractReport, extract
from packer.pack import Pack, Sample, open_pack
from packer.parts import convert_part, merge, save_plan
from packer.registry import list_formats
from packer.samples import convert_samples
from packer.stage import StageReport, stage
from packer.transforms import Transform
from packer.update import Changes, status
from packer.verify import Problem, VerifyReport, verify_pack

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
