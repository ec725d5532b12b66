"""The public Python API: what the `ocirt` command does, as calls, from the same code.

Like the command line (ocirt/cli.py, ocirt/commands/), this is a thin adapter over the core
(ocirt/container.py, create.py, execute.py, execspec.py, signals.py, defaults.py, features_doc.py, ...); it
never imports the command line (tests/unit/test_layering.py checks it).

    import ocirt.api as ocirt                    # (Runtime, Container, spec, features and the
                                                 # errors are also plain ocirt.<name>)
    rt = ocirt.Runtime()                         # --root /run/ocirt (or $XDG_RUNTIME_DIR/ocirt)
    box = rt.create("web", bundle="bundles/default")
    box.start()
    box.state()["status"]                        # "running": read from the kernel, as `state`
    code = box.exec(["cat", "/etc/hostname"])    # the exit code (detach=True: the pid)
    box.kill("KILL"); box.wait(); box.delete()

    rt.run("once", bundle="bundles/default")     # create + start + wait + delete: the exit code
    rt.list()                                    # the OCI state of every container under root
    ocirt.plan("bundles/default")                # every kernel operation create would make
    ocirt.validate(config_dict)                  # ConfigError naming the field, or None
    ocirt.spec(rootless=False), ocirt.features()

Each call opens the container's state, takes its lock where the command does, and lets go
before returning: a `Container` handle is just a name, so handles in several processes (and the
CLI) can act on one container, as runc's commands can. Errors are `ocirt.OcirtError` (with
`.errno`) and its subclass `ocirt.ConfigError` (with `.pointer`), one-line messages as the CLI
prints them.

`run` and a foreground `exec` must be the reaper of the process they wait for (its exit code
comes only to a parent or a child subreaper). They do not make the caller a subreaper: the work
happens in a forked helper that is one (as the `ocirt` command is), hands back the exit code,
and goes on reaping what the container leaves orphaned until nothing is left; so no zombie of
the container ever lands in the caller (a zombie in a container's pid namespace would keep its
init from dying).
"""

from __future__ import annotations

import os
import time

from .errors import ConfigError, OcirtError

__all__ = ["Runtime", "Container", "plan", "validate", "spec", "features", "OcirtError", "ConfigError"]


def _in_reaper(fn):
    """Run fn() in a double-forked helper that is a child subreaper; its result (an int) or its
    OcirtError comes back over a pipe. The helper then reaps every orphan the work left (a
    process of the container) and exits; the caller keeps no child and no zombie of it."""
    from . import jsonio
    from .state import read_to_end

    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the short-lived middle child
        status = 0
        try:
            os.close(r)
            if os.fork() == 0:  # the helper
                _reaper_main(fn, w)
            os.close(w)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    os.waitpid(pid, 0)
    answer = read_to_end(r)
    os.close(r)
    if not answer:
        raise OcirtError("the ocirt helper process died before it answered")
    result = jsonio.loads(answer)
    if "value" in result:
        return result["value"]
    if result.get("pointer") is not None:
        err: OcirtError = ConfigError(
            result["pointer"], result["rule"], result.get("document", "config.json")
        )
    else:
        err = OcirtError(result["message"], errno=result.get("errno"))
    raise err


def _reaper_main(fn, w: int) -> None:
    from . import jsonio
    from . import kernel as k

    code = 0
    try:
        from .kernel.linux import LinuxKernel

        LinuxKernel().prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        try:
            result = {"value": fn()}
        except ConfigError as e:
            document = e.message.split(":", 1)[0]
            result = {"pointer": e.pointer, "rule": e.rule, "document": document}
        except OcirtError as e:
            result = {"message": e.message, "errno": e.errno}
        except BaseException as e:  # noqa: BLE001 - reported, not swallowed
            result = {"message": f"{type(e).__name__}: {e}"}
        os.write(w, jsonio.dumps(result).encode())
        os.close(w)
        while True:  # what the container left orphaned
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _warn(message: str) -> None:
    import logging

    logging.getLogger("ocirt").warning(message)


class Runtime:
    """A state root and the global options of the command line."""

    def __init__(
        self,
        root: str | None = None,
        *,
        systemd_cgroup: bool = False,
        rootless: bool | None = None,
        warn=_warn,
    ):
        from .defaults import default_root, rootless_mode

        self.root = root or default_root()
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless_mode("auto") if rootless is None else bool(rootless)
        self.warn = warn

    def __repr__(self) -> str:
        return f"ocirt.Runtime(root={self.root!r})"

    def _kernel(self):
        from .kernel.linux import LinuxKernel

        return LinuxKernel()

    def _options(self, container_id: str, bundle: str, **kw):
        from .checks import CreateOptions

        return CreateOptions(
            id=container_id,
            bundle=os.fspath(bundle),
            root=self.root,
            systemd_cgroup=self.systemd_cgroup,
            rootless=self.rootless,
            warn=self.warn,
            **kw,
        )

    # -- making containers ----------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle=".",
        *,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
    ) -> Container:
        """`ocirt create`: the container exists, its process waits for start()."""
        from .create import create

        sd, _ = create(
            self._options(
                container_id,
                bundle,
                pid_file=pid_file,
                console_socket=console_socket,
                no_pivot=no_pivot,
                no_new_keyring=no_new_keyring,
                preserve_fds=preserve_fds,
            ),
            self._kernel(),
        )
        sd.unlock()
        return Container(self, container_id)

    def run(
        self,
        container_id: str,
        bundle=".",
        *,
        detach: bool = False,
        keep: bool = False,
        no_pivot: bool = False,
        preserve_fds: int = 0,
    ) -> int:
        """`ocirt run`: create, start, and (unless detach) wait for the container's process and
        delete the container (unless keep). Returns its exit code (128+N for signal N), or 0
        when detached. The process shares the caller's stdio; a config with process.terminal
        needs the command line (`ocirt run` relays the terminal) or create(console_socket=)."""
        from .container import start_created, wait_init
        from .create import create

        def run() -> int:
            sd, state = create(
                self._options(container_id, bundle, no_pivot=no_pivot, preserve_fds=preserve_fds),
                self._kernel(),
            )
            start_created(sd, state)
            if detach:
                return 0
            code = wait_init(state.pid)
            if not keep:
                Container(self, container_id).delete(force=True)
            return code

        if detach:  # nothing to wait for: the init goes to the host's reaper, as after create
            return run()
        return _in_reaper(run)

    def container(self, container_id: str) -> Container:
        """A handle on an existing container (OcirtError if there is none)."""
        box = Container(self, container_id)
        box.state()
        return box

    def list(self) -> list:
        """The OCI state of each container under root, as `ocirt list --format json` has them."""
        from .container import OpenContainer
        from .state import list_ids

        out = []
        for cid in list_ids(self.root):
            try:
                c = OpenContainer.open(self.root, cid, lock=False)
            except OcirtError:
                continue  # deleted meanwhile
            out.append(c.state.oci(c.status()))
        return out


class Container:
    """One container, by id. Every method is one `ocirt` command."""

    def __init__(self, runtime: Runtime, container_id: str):
        self.runtime = runtime
        self.id = container_id

    def __repr__(self) -> str:
        return f"ocirt.Container({self.id!r}, root={self.runtime.root!r})"

    def _open(self, lock: bool = True):
        from .container import OpenContainer

        return OpenContainer.open(self.runtime.root, self.id, lock=lock)

    def _locked(self, fn):
        with self._open() as c:
            return fn(c)

    def state(self) -> dict:
        """The OCI state (runtime.md): ociVersion, id, status, pid, bundle, annotations."""
        c = self._open(lock=False)
        return c.state.oci(c.status())

    @property
    def status(self) -> str:
        return self.state()["status"]

    def start(self) -> None:
        self._locked(lambda c: c.start())

    def kill(self, sig="TERM", all: bool = False) -> None:
        """Send a signal (a number or a name: 9, "KILL", "SIGKILL") to the init, or with all=True
        to every process of the container."""
        from .signals import signal_number

        num = signal_number(sig)
        self._locked(lambda c: c.kill(num, all_processes=all))

    def wait(self, timeout: float | None = None, interval: float = 0.02) -> str:
        """Wait until the container has stopped; its status then ("stopped"). TimeoutError when
        it has not after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status
            if status == "stopped":
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"container {self.id} still {status} after {timeout}s")
            time.sleep(interval)

    def delete(self, force: bool = False) -> None:
        try:
            c = self._open()
        except OcirtError:
            from .container import remove_leftover

            if force and remove_leftover(self.runtime.root, self.id):
                return
            raise
        with c:
            c.delete(force=force)

    def pause(self) -> None:
        self._locked(lambda c: c.pause())

    def resume(self) -> None:
        self._locked(lambda c: c.resume())

    def pids(self) -> list:
        """The host pids of the container's processes, as `ocirt ps --format json`."""
        return self._open(lock=False).pids()

    def stats(self) -> dict:
        """Resource usage, shaped as the "data" of `ocirt events --stats` (runc's types.Stats)."""
        from .events import stats_event, watched_cgroup

        c = self._open(lock=False)
        return stats_event(c, watched_cgroup(c))["data"]

    def events(self, interval: float = 5.0):
        """`ocirt events`: yields {"type": "stats", "id", "data"} every interval seconds and
        {"type": "oom", "id"} when the cgroup's OOM counter grows, until the container stops."""
        from .events import watch, watched_cgroup

        if interval <= 0:
            raise OcirtError("duration interval must be greater than 0")
        c = self._open(lock=False)
        return watch(c, watched_cgroup(c), interval)

    def update(self, resources: dict) -> None:
        """`ocirt update --resources`: linux.resources (partial) written to the live cgroup."""
        from . import jsonio
        from .cgroups.update import apply_resources, from_json

        delta = from_json(jsonio.dumps(resources))
        self._locked(lambda c: apply_resources(c, delta, self.runtime.warn))

    def exec(
        self,
        args=(),
        *,
        env=(),
        cwd: str | None = None,
        user: str | None = None,
        additional_gids=(),
        no_new_privileges: bool = False,
        apparmor: str | None = None,
        process_label: str | None = None,
        caps=(),
        process: dict | None = None,
        detach: bool = False,
        pid_file: str | None = None,
    ) -> int:
        """`ocirt exec`: args (or a whole process.json dict) in the container, with its
        confinement; the keywords are exec's flags (user: "uid[:gid]"). Returns the exit code,
        or the pid when detach=True."""
        from .container import wait_init
        from .execspec import ExecOptions, parse_user, process_config, process_spec

        uid, gid = parse_user(user) if user else (None, None)
        opts = ExecOptions(
            process=process,
            env=list(env),
            cwd=cwd,
            uid=uid,
            gid=gid,
            additional_gids=[int(g) for g in additional_gids],
            no_new_privileges=no_new_privileges,
            apparmor=apparmor,
            process_label=process_label,
            caps=list(caps),
        )

        def start(c):
            proc = process_config(opts, list(args), c.state.bundle)
            if proc.get("terminal"):
                raise OcirtError("exec with a terminal needs the command line (ocirt exec -t)")
            from .execute import exec_process

            return exec_process(c, process_spec(proc, opts), self.runtime._kernel(), pid_file=pid_file)

        if detach:
            return self._locked(start)
        return _in_reaper(lambda: wait_init(self._locked(start)))


# -- without a container --------------------------------------------------------------------------


def plan(
    bundle=".", container_id: str = "plan", *, root: str | None = None, systemd_cgroup: bool = False
) -> list:
    """Every kernel operation `create` would make for the bundle, made by nobody: a list of
    {"stage", "op", "args", "text", "causes"} (what `ocirt plan --format json` prints)."""
    from . import plan as plan_mod
    from .explain import Explained

    opts = Runtime(root or "/run/ocirt", systemd_cgroup=systemd_cgroup, rootless=False)._options(
        container_id,
        bundle,
        init_as_child=True,  # what `ocirt create` does
    )
    p = plan_mod.build(opts)
    return plan_mod.render_json(p, Explained(p, bundle).causes)


def validate(config: dict) -> None:
    """Check a config.json dict as create does: ConfigError (naming the field) if it is not
    valid."""
    from .validate import validate as _validate

    _validate(config)


def spec(rootless: bool = False, args=None) -> dict:
    """A starter config.json, as `ocirt spec [--rootless]` writes it."""
    from .spec_template import default_spec

    return default_spec(rootless=rootless, args=args)


def features() -> dict:
    """What this ocirt supports (features.md), as `ocirt features` prints it."""
    from .features_doc import features as _features

    return _features()
