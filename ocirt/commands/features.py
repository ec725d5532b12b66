"""`ocirt features`: the Features structure (ocirt/features_doc.py) as JSON on stdout."""

import json
import sys

from ..cli import UsageError
from ..features_doc import features

USAGE = "features"
OPTIONS = ()


def main(g, o, args) -> int:
    if args:
        raise UsageError('ocirt: "features" requires exactly 0 argument(s)')
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
