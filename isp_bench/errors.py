"""One exception hierarchy for isp-bench.

Every message names the file or value that was wrong, what was wrong, and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class IspBenchError(Exception):
    """Root of every error isp-bench raises on purpose."""


class IspBenchWarning(UserWarning):
    """Something the user should know that does not stop the work (the command line prints it as one line)."""


class RawFileError(IspBenchError):
    """A raw file could not be turned into a RawCapture."""

    def __init__(self, path: str | Path, reason: str, fix: str = ""):
        self.path = str(path)
        self.reason = reason
        self.fix = fix
        message = f"{self.path}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class UnsupportedFormatError(RawFileError):
    """LibRaw does not recognise the container (not a raw file, or an unsupported one)."""


class NotMosaicError(RawFileError):
    """The file holds already-demosaiced data (LinearRaw DNG, film scanner NEF), not a CFA mosaic."""


class TruncatedFileError(RawFileError):
    """The file ends before its pixel data does, or LibRaw reports an I/O or data error."""


class NoPixelDataError(RawFileError):
    """The container opens but holds no real sensor data (a metadata-only stub)."""


class ExifError(RawFileError):
    """The file's EXIF/TIFF metadata cannot be parsed."""


class ManifestError(IspBenchError):
    """A manifest file is missing, has the wrong schema, or disagrees with the files it lists."""


class DatasetError(IspBenchError):
    """A dataset folder does not have the layout its source expects."""


class UnknownNameError(IspBenchError, KeyError):
    """A registry lookup (dataset source, model, metric) missed; the message lists near misses."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


def unknown_name_error(kind: str, name: str, known: list[str]) -> UnknownNameError:
    """An UnknownNameError whose message lists the closest registered names."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{hint} Registered: {', '.join(sorted(known)) or '(none)'}."
    )
