"""telcoplan's version: the one place it is written (``pyproject.toml`` reads it from here).

A constant rather than ``importlib.metadata.version("telcoplan")``, whose import (the email
package among others) cost every command ~35 ms; it also holds in a source tree that was never
installed.
"""

__version__ = "0.1.0"
