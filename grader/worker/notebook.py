"""Running a notebook's code cells with nbclient, inside the worker's isolation.

The grader sends the cells it wants run, already turned into plain Python (magics and shell
escapes handled on the trusted side, cells tagged ``skip-grading`` left out). This task executes
them in order in a Jupyter kernel, one cell at a time, with a per-cell timeout and a total
timeout, and answers for each cell: ``ok``, ``error`` (it raised; the next cells still run, as with
nbclient's ``allow_errors``), ``timeout``, ``died`` (the kernel process ended) or ``not_run``. It
returns data only: the grader decides what the outcomes mean.

The kernel is forked from the worker (which has imported torch already), so a notebook costs one
kernel start (~0.6 s) rather than a fresh Python that imports torch again. It talks to nbclient
over ZeroMQ ``ipc`` sockets in the private ``/tmp``, so it needs no network at all. After a
timeout or a dead kernel a new kernel is forked, the cells that succeeded are replayed, and the
run goes on with the next cell (at most ``max_restarts`` times). The argument ``kernel="spawn"``
(the grader's ``GRADER_NOTEBOOK_KERNEL=spawn``) starts an ordinary ``ipykernel`` process instead
(slower; for platforms where forking a process that imported torch is unsafe).

This runs the student's code only in the kernel process; nothing here is sent into the kernel
except the student's own cells. The kernel cannot create processes: before it starts it installs
a seccomp filter denying fork, vfork, clone without CLONE_THREAD, execve and execveat
(:func:`forbid_processes`), so the claim "no shell from notebooks" holds in the kernel whatever
the spelling (``get_ipython().system``, an alias, ``exec`` of an encoded string,
``subprocess``). The kernel is always forked for that reason (``kernel="spawn"`` also installs
it, through the kernel's first executed line).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\s*\[\d*\],\s*line (\d+)")
_INPUT_LINE = re.compile(r"<ipython-input-\d+-[0-9a-f]+>.* in \S+\n.*?-+> ?(\d+)", re.S)


class _Kernel:
    """One kernel: forked from this process (default) or spawned as a new process."""

    def __init__(self, mode: str, path: list[str]):
        self.mode, self.path = mode, path
        self.pid: int | None = None
        self.status: int | None = None  # wait status once it ended
        self.km: Any = None
        self.info: dict[str, Any] = {}
        self.folder = tempfile.mkdtemp(prefix="grader-kernel-")

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        from jupyter_client.connect import write_connection_file

        conn = os.path.join(self.folder, "kernel.json")
        _, self.info = write_connection_file(conn, transport="ipc",
                                             ip=os.path.join(self.folder, "k"))
        if self.mode == "spawn":
            self._spawn(conn)
            return
        _preload()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the kernel
            code = 1
            try:
                _become_kernel(conn, parent)
                code = 0
            finally:
                os._exit(code)
        self.pid = pid

    def _spawn(self, conn: str) -> None:
        from jupyter_client.manager import KernelManager

        env = dict(os.environ)
        grader_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([*self.path, grader_root])
        self.km = KernelManager(kernel_name="python3", connection_file=conn)
        self.km.load_connection_file()
        # Before the first cell: the same no-process filter as a forked kernel (all threads).
        forbid = ('--IPKernelApp.exec_lines=["from grader.worker.notebook import '
                  'forbid_processes; forbid_processes()"]')
        self.km.start_kernel(extra_arguments=[*_KERNEL_ARGS, forbid], env=env, cwd=os.getcwd())
        self.pid = self.km.provisioner.pid if self.km.provisioner else None

    def alive(self) -> bool:
        if self.status is not None or self.pid is None:
            return False
        if self.km is not None:
            alive = self.km.is_alive()
            if not alive:
                process = getattr(self.km.provisioner, "process", None)
                code = process.poll() if process is not None else 0
                self.status = _wait_status(code) if code is not None else 0
            return alive
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.status = 0
            return False
        if pid == 0:
            return True
        self.status = status
        return False

    def interrupt(self) -> None:
        if self.pid is not None and self.alive():
            os.kill(self.pid, signal.SIGINT)

    def kill(self) -> None:
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.alive()
        elif self.pid is not None and self.alive():
            for target in (lambda: os.killpg(self.pid, signal.SIGKILL),
                           lambda: os.kill(self.pid, signal.SIGKILL)):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                _, self.status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)

    def describe_end(self) -> str:
        """How the kernel process ended, in words."""
        st = self.status
        if st is None:
            return "the kernel stopped answering"
        if os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            hint = " (out of memory?)" if name == "SIGKILL" else ""
            return f"the kernel was killed by {name}{hint}"
        code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else st
        return f"the kernel process exited with code {code} (os._exit() or a crash?)"

    # -- what nbclient needs of a kernel manager -------------------------------------------
    @property
    def has_kernel(self) -> bool:
        return self.pid is not None

    def client(self):
        from jupyter_client.asynchronous import AsyncKernelClient

        kernel = self

        class _Client(AsyncKernelClient):
            async def _async_is_alive(self) -> bool:  # the process, not the heartbeat
                return kernel.alive()

            is_alive = _async_is_alive

            async def wait_for_ready(self, timeout: float | None = None) -> None:
                """jupyter_client's, without its fixed 0.2 s waits: the kernel is ready when
                it has answered kernel_info on the shell channel and its idle status for that
                request came on IOPub (which is then connected)."""
                from queue import Empty

                deadline = time.monotonic() + (timeout or 60.0)
                # IOPub is connected once the kernel greets the subscription (iopub_welcome,
                # ipykernel >= 7); an older kernel does not, and the loop below then retries.
                greeted = time.monotonic() + 3.0
                while time.monotonic() < min(greeted, deadline):
                    if not kernel.alive():
                        raise RuntimeError("Kernel died before replying to kernel_info")
                    try:
                        msg = await self.iopub_channel.get_msg(timeout=0.05)
                    except Empty:
                        continue
                    if msg["msg_type"] == "iopub_welcome":
                        break
                while time.monotonic() < deadline:
                    msg_id = self.kernel_info()
                    reply = None
                    while reply is None and time.monotonic() < deadline:
                        if not kernel.alive():
                            raise RuntimeError("Kernel died before replying to kernel_info")
                        try:
                            msg = await self.shell_channel.get_msg(timeout=0.05)
                        except Empty:
                            continue
                        if msg["parent_header"].get("msg_id") == msg_id:
                            reply = msg
                    try:
                        while True:
                            msg = await self.iopub_channel.get_msg(timeout=1.0)
                            if (msg["parent_header"].get("msg_id") == msg_id
                                    and msg["msg_type"] == "status"
                                    and msg["content"].get("execution_state") == "idle"):
                                return
                    except Empty:
                        continue  # IOPub was not connected yet: ask again
                raise RuntimeError("the kernel did not answer in time")

        kc = _Client()
        kc.load_connection_info(self.info)
        return kc

    async def is_alive(self) -> bool:
        return self.alive()

    async def interrupt_kernel(self) -> None:
        self.interrupt()

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self.kill()

    async def cleanup_resources(self, restart: bool = False) -> None:
        return None


def _preload() -> None:
    """Import what a kernel needs once, in the worker, so that each forked kernel starts in
    ~0.1 s. The debugger (debugpy) is left out: a grading kernel is never debugged."""
    sys.modules.setdefault("debugpy", None)  # type: ignore[arg-type]
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import ipykernel.zmqshell  # noqa: F401


_KERNEL_ARGS = ["--HistoryManager.enabled=False", "--IPKernelApp.quiet=True",
                "--InteractiveShell.colors=NoColor", "--IPKernelApp.capture_fd_output=False"]


def _become_kernel(conn: str, parent: int) -> None:
    """In the forked child: shed the worker's channels and run an IPython kernel."""
    os.setpgid(0, 0)  # its own group, so that killing it also ends what it started
    try:  # die with the worker even if it is killed without a chance to clean up
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # The worker's protocol pipes (and anything else it holds open) are not the kernel's.
    os.closerange(3, 4096)
    forbid_processes()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import importlib

    importlib.invalidate_caches()  # modules the grader wrote since the worker started
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", conn, f"--IPKernelApp.parent_handle={parent}", *_KERNEL_ARGS])
    app.start()


def forbid_processes() -> None:
    """From here on this process (every thread) cannot start a process or exec a program: no
    shell escape, ``os.system``, ``subprocess`` or ``os.fork`` from a notebook's cells works,
    whatever spelling it takes. Threads still work. Where the architecture has no filter, the
    sandbox's own limits remain."""
    from grader.shared import seccomp

    if seccomp.supported():
        seccomp.install(seccomp.no_process_filter())


def _wait_status(code: int | None) -> int | None:
    if code is None:
        return None
    return (-code) & 0x7F if code < 0 else (code & 0xFF) << 8


def _error_line(traceback_text: str) -> int | None:
    """The line of the cell where the error happened, from IPython's traceback text."""
    text = _ANSI.sub("", traceback_text)
    found = _CELL_LINE.search(text) or _INPUT_LINE.search(text)
    return int(found.group(1)) if found else None


def run_notebook(session: Any, args: dict[str, Any], tensors: dict[str, Any]):
    """Task ``notebook``: run ``args["cells"]`` (``[{"index", "source"}]``) in a kernel.

    Other arguments: ``name`` (the notebook's file name, for the log), ``cell_timeout`` and
    ``total_timeout`` in seconds, ``max_restarts``, ``kernel`` ("fork" or "spawn").
    """
    started = time.monotonic()
    cells = args["cells"]
    cell_timeout = float(args.get("cell_timeout", 60.0))
    deadline = started + float(args.get("total_timeout", 300.0))
    max_restarts = int(args.get("max_restarts", 2))
    mode = args.get("kernel") or ("fork" if sys.platform.startswith("linux") else "spawn")
    path = [str(d) for d in (getattr(session, "modules_dir", None), session.submission) if d]
    outcomes: list[dict[str, Any]] = [{"index": c["index"], "status": "not_run"} for c in cells]
    done: list[int] = []  # positions of the cells that ran (raising or not), for a replay
    position, starts = 0, 0
    while position < len(cells):
        kernel = _Kernel(mode, path)
        starts += 1
        try:
            kernel.start()
            position = asyncio.run(_session(kernel, cells, outcomes, done, position,
                                            cell_timeout, deadline))
        finally:
            kernel.kill()
        if position < len(cells) and outcomes[position]["status"] in ("timeout", "died"):
            position += 1  # the next kernel carries on after the cell that stopped this one
            if starts > max_restarts:
                for o in outcomes[position:]:
                    o["reason"] = "the kernel had to be restarted too often"
                break
        elif position < len(cells):
            break  # the total time is up, or the replay failed: the rest did not run
    for o, c in zip(outcomes, cells, strict=True):
        if o["status"] != "ok":
            first = next((ln.strip() for ln in c["source"].splitlines() if ln.strip()), "")
            print(f"[grader] {args.get('name', 'notebook')}, cell {c['index'] + 1} "
                  f"(`{first[:60]}`): {o['status']} {o.get('message', o.get('reason', ''))}",
                  file=sys.stderr)
    return {"cells": outcomes, "kernel": mode, "kernel_starts": starts,
            "seconds": round(time.monotonic() - started, 3)}, {}


async def _session(kernel: _Kernel, cells: list[dict[str, Any]], outcomes: list[dict[str, Any]],
                   done: list[int], position: int, cell_timeout: float, deadline: float) -> int:
    """Run cells from ``position`` on in this kernel (after replaying ``done``); return the
    position of the first cell not finished here (``len(cells)`` when all ran)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c["source"]) for c in cells]
    client = NotebookClient(nb, km=kernel, timeout=int(cell_timeout), allow_errors=False,
                            interrupt_on_timeout=False, kernel_name="python3",
                            startup_timeout=60, iopub_timeout=5, record_timing=False)
    replay = [i for i in done if i < position]
    raised = {i for i in replay if outcomes[i]["status"] == "error"}
    try:
        async with client.async_setup_kernel():
            for i in replay:  # what the previous kernel had run, so that it holds the same
                try:
                    await client.async_execute_cell(nb.cells[i], i, execution_count=i + 1)
                except CellExecutionError:
                    if i in raised:
                        continue  # it raised the first time too
                    for o in outcomes[position:]:
                        o["reason"] = (f"replaying cell {cells[i]['index'] + 1} after a kernel "
                                       f"restart failed")
                    return position
                except Exception as exc:  # noqa: BLE001 - any other failure ends the replay
                    for o in outcomes[position:]:
                        o["reason"] = (f"replaying cell {cells[i]['index'] + 1} after a kernel "
                                       f"restart failed ({type(exc).__name__})")
                    return position
            while position < len(cells):
                outcome = outcomes[position]
                remaining = deadline - time.monotonic()
                if remaining <= 1:
                    for o in outcomes[position:]:
                        o.update(reason="the notebook used up its total time", out_of_time=True)
                    return position
                client.timeout = int(max(1, min(cell_timeout, remaining)))
                began = time.monotonic()
                try:
                    await client.async_execute_cell(nb.cells[position], position,
                                                    execution_count=position + 1)
                    outcome["status"] = "ok"
                    done.append(position)
                except CellExecutionError as exc:
                    outcome.update(status="error", type=exc.ename,
                                   message=str(exc.evalue)[:2000], line=_error_line(exc.traceback))
                    done.append(position)
                except CellTimeoutError:
                    outcome.update(status="timeout", timeout=client.timeout,
                                   message=f"ran past its time limit of {client.timeout} s")
                    return position
                except DeadKernelError:
                    kernel.alive()
                    outcome.update(status="died", message=kernel.describe_end())
                    return position
                finally:
                    outcome["seconds"] = round(time.monotonic() - began, 3)
                nb.cells[position].outputs = []  # the grader does not keep outputs
                position += 1
    finally:
        kc = getattr(client, "kc", None)
        if kc is not None:
            try:
                kc.stop_channels()
                kc.context.destroy(linger=0)
            except Exception:  # noqa: BLE001 - best effort
                pass
    return position


def forbid_processes_task(session: Any, args: dict[str, Any], tensors: dict[str, Any]):
    """Task ``forbid_processes``: the worker itself can no longer start processes (sent before
    modules made from notebooks are imported, so their cells cannot either)."""
    forbid_processes()
    from grader.shared import seccomp

    return {"forbidden": seccomp.supported()}, {}


TASKS = {"notebook": run_notebook, "forbid_processes": forbid_processes_task}
