"""tgops: one package for every Lambda and every Fargate worker."""

__version__ = "0.1.0"
