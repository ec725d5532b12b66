"""ocirt: an OCI container runtime in Python.

The command is `ocirt` (runc's command line). The Python API (ocirt/api.py) is loaded on first
use, so that `import ocirt` stays cheap for the command itself:

    import ocirt, ocirt.api
    box = ocirt.Runtime().create("web", bundle="bundles/default")
    box.start()
    ocirt.api.plan("bundles/default")
"""

__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"  # the OCI runtime spec this ocirt implements (ociVersionMax)

# what `ocirt.<name>` gives without naming the api module; plan() and validate() are reached as
# ocirt.api.plan / ocirt.api.validate (ocirt.plan and ocirt.validate are modules of their own)
_API = ("Runtime", "Container", "spec", "features", "OcirtError", "ConfigError")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'ocirt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
