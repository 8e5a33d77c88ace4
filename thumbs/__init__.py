"""thumbs: the image library picker's thumbnail proxy, library API and CLI."""

__version__ = "0.1.0"
