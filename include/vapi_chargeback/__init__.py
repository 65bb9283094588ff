"""vapi-chargeback: monthly chargeback statements per cost center from the Vapi Analytics API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vapi-chargeback")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
