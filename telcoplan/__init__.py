"""telcoplan — plan shared telecom infrastructure (towers, fiber) from GIS layers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("telcoplan")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
