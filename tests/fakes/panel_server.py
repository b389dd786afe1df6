"""The fake SMM panel now lives in the package (`tgops dev` runs it): tgops.local.fake_panel."""

from tgops.local.fake_panel import CannedAnswer, FakePanel

__all__ = ["CannedAnswer", "FakePanel"]
