"""assetd: keeps an asset catalog true to the files under a set of configured roots."""

__version__ = "0.1.0"
