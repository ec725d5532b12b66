"""Re-exports of the names that used to live here, for the files that still import them from here
(to be pointed at their new modules, then this file removed):

    ocirt/checks.py     CreateOptions, check_config, check_intel_rdt
    ocirt/create.py     create (the parent's orchestration)
    ocirt/execute.py    exec_process, fork_with_affinity
"""
from .checks import CreateOptions, check_intel_rdt  # noqa: F401 - api.py; tests/unit/test_procattr.py
from .create import create  # noqa: F401 - api.py, commands/run.py
from .execute import exec_process, fork_with_affinity  # noqa: F401 - container.py; test_procattr.py
