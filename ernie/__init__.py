"""ERNIE 2.0 model library: config, tokenization, modeling, checkpoints, conversion, encoding.

Importing the package is cheap: modules that need Paddle import it themselves, so the data
generators can use `ernie.tokenization` without loading Paddle.
"""
import os as _os
import warnings as _warnings

__version__ = "0.1.0"

# Paddle logs every executor start at INFO level and warns about ccache at import; neither
# concerns a user of this library. Set GLOG_minloglevel=0 to see Paddle's logs again.
_os.environ.setdefault("GLOG_minloglevel", "2")
_warnings.filterwarnings("ignore", message="No ccache found")
