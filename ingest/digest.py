"""sha1 and blake2b for the sidecar, from Python's built-in modules.

``hashlib`` loads OpenSSL's libcrypto for them, some 3.5 MB of memory for two hashes that
Python also builds in; the sidecar keeps its memory small (see docs/benchmarks.md).
"""

try:
    from _blake2 import blake2b
    from _sha1 import sha1
except ImportError:  # a Python built without them
    from hashlib import blake2b, sha1

__all__ = ["blake2b", "sha1"]
