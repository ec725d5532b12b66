"""`ocirt features`: the Features structure (ocirt/features_doc.py) as JSON on stdout."""

import json

from ..cli import UsageError
from ..features_doc import features
from .state import write_stdout

USAGE = "features"
OPTIONS = ()


def main(g, o, args) -> int:
    if args:
        raise UsageError('ocirt: "features" requires exactly 0 argument(s)')
    write_stdout(json.dumps(features(), indent=4) + "\n")
    return 0
