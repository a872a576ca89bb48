r"""Executing a chapter: papermill runs the converted source in a kernel of this environment, and the
executed notebook is cleaned of what changes on every run and written atomically. Used by
``book/build.py``.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sources import DEFAULT_OUTPUT_DIR, FAILED_DIR, LIB_DIR, REPO_ROOT, BuildError, read_source, set_cell_ids

from thesis_lib.publishing.reads import READS_LOG_ENV  # torch-free, like thesis_lib.ground.config

KERNEL_NAME = "python3"
VERSIONED = ("torch", "thesis_lib")  # packages whose installed version is an input of every chapter


def input_hash(source: bytes, parameters: Mapping[str, Any], lib_dir: Path) -> str:
    """SHA-256 of a chapter's inputs: its source bytes, its parameters, every ``lib_dir/*.py`` and the
    installed versions of torch and thesis_lib. (The files a chapter reads while it runs, checkpoints
    and cached metrics, are known only after it ran: see :func:`up_to_date`.)

    Each part is framed by a tag and its length, so moving bytes between parts changes the hash;
    library files enter sorted by name, with their names (renaming a module changes the hash).
    Parameters enter as canonical JSON (sorted keys): their order on the command line does not matter.
    """
    digest = hashlib.sha256()

    def part(tag: str, data: bytes) -> None:
        digest.update(f"{tag}:{len(data)}:".encode())
        digest.update(data)

    part("source", bytes(source))
    part("parameters", json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    for path in sorted(Path(lib_dir).rglob("*.py")):
        part("file", path.relative_to(lib_dir).as_posix().encode())
        part("content", path.read_bytes())
    part("versions", json.dumps({name: _version(name) for name in VERSIONED}).encode())
    return digest.hexdigest()


def input_parts(source: bytes, lib_dir: Path) -> dict[str, Any]:
    """What :func:`input_hash` hashes besides the parameters, part by part: the SHA-256 of the source, one
    SHA-256 of the library's files (names and contents, framed as there) and the versions. An executed
    notebook records them (``metadata.companion.inputs``), so that the status page can say which part changed
    when the input hash no longer matches."""
    library = hashlib.sha256()
    for path in sorted(Path(lib_dir).rglob("*.py")):
        for data in (path.relative_to(lib_dir).as_posix().encode(), path.read_bytes()):
            library.update(f"{len(data)}:".encode() + data)
    return {"source": hashlib.sha256(bytes(source)).hexdigest(), "library": library.hexdigest(),
            "versions": {name: _version(name) for name in VERSIONED}}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _shown(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def files_read(log: Path) -> dict[str, str]:
    """``{path: SHA-256}`` of the files named in a reads log (``thesis_lib.publishing.reads.log_reads``), as they
    are now; paths inside the repository are relative to it. A file that no longer exists is left out."""
    if not log.is_file():
        return {}
    paths = sorted({Path(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()})
    return {_shown(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


def up_to_date(output: Path, digest: str) -> bool:
    """Whether the executed notebook ``output`` was made from inputs with the hash ``digest`` and every file
    it read while it ran (``metadata.companion.reads``) still has the SHA-256 it had then."""
    try:
        companion = json.loads(Path(output).read_text(encoding="utf-8")).get("metadata", {}).get("companion", {})
    except (OSError, ValueError):
        return False
    if companion.get("input_hash") != digest:
        return False
    for shown, sha in companion.get("reads", {}).items():
        path = Path(shown) if Path(shown).is_absolute() else REPO_ROOT / shown
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            return False
    return True


@contextlib.contextmanager
def _kernel_environment(reads_log: Path) -> Iterator[None]:
    """The environment the chapter's kernel starts with: its reads log, and debugpy's frozen-modules
    warning silenced; this process's own environment is restored afterwards."""
    settings = {READS_LOG_ENV: str(reads_log), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def clean_executed(nb: Any, *, companion: Mapping[str, Any]) -> Any:
    """Strip what changes on every run from a papermill-executed notebook and tag its injected cell.

    Removes papermill's per-cell metadata (start/end times, durations, status) and the kernel's
    ``execution`` timings, keeps only ``parameters`` of papermill's notebook metadata (its
    timestamps, duration and temporary input/output paths go), adds ``remove-cell`` to the
    ``injected-parameters`` cell, recomputes the content-derived cell ids and records ``companion``
    (input hash, source, parameters, the files read, and when and for how long it ran) under
    ``metadata.companion``. Execution counts stay.
    """
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    papermill = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": papermill.get("parameters", {})}
    nb.metadata["companion"] = dict(companion)
    return set_cell_ids(nb)


def write_atomic(nb: Any, path: Path) -> None:
    """Write ``nb`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    import nbformat

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_kernel() -> None:
    """Make sure kernel ``python3`` runs this interpreter; install its spec into the venv if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    own = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if not own.exists():
        print(f"installing the {KERNEL_NAME} kernel spec into {sys.prefix}", flush=True)
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME],
                       check=True, capture_output=True)
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as exc:
        raise BuildError(f"kernel {KERNEL_NAME!r} not found even after installing it: {exc}") from exc
    exe = spec.argv[0]
    generic = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if exe not in generic and Path(exe).resolve() != Path(sys.executable).resolve():
        raise BuildError(f"kernel {KERNEL_NAME!r} ({spec.resource_dir}) runs {exe}, not {sys.executable}: "
                         f"remove that kernel spec or run the build from the environment it belongs to")


def _source_line(text: str, cell_source: str) -> int | None:
    index = text.find(cell_source.strip()) if cell_source.strip() else -1
    return None if index < 0 else text.count("\n", 0, index) + 1


def failed_dir_for(output_dir: Path) -> Path:
    """Where failed runs are kept: ``book/_build/failed/``, or ``OUTPUT_DIR/_failed/`` for another folder."""
    output_dir = Path(output_dir).resolve()
    return FAILED_DIR if output_dir == DEFAULT_OUTPUT_DIR.resolve() else output_dir / "_failed"


def declared_parameters(nb: Any) -> set[str]:
    """The names assigned in the notebook's cell tagged ``parameters`` (papermill's convention)."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def execute_chapter(number: str, source: Path, output: Path, parameters: Mapping[str, Any],
                    digest: str) -> None:
    """Execute one chapter with papermill and write it atomically to ``output``.

    A parameter that the chapter's parameters cell does not declare is refused before anything runs.
    On failure the previous ``output`` is untouched, the failed run is kept (see
    :func:`failed_dir_for`) and a :class:`BuildError` names the chapter, the cell and its line in the
    source.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    text = source.read_text(encoding="utf-8")
    nb = read_source(source)
    declared = declared_parameters(nb)
    unknown = sorted(set(parameters) - declared)
    if unknown:  # papermill would only warn, and the chapter would run without them
        raise BuildError(f"chapter {number} declares no parameter {', '.join(map(repr, unknown))} in its "
                         f"parameters cell (it has {', '.join(sorted(declared)) or 'none'}); "
                         f"{output.name} was left as it was")
    parts = input_parts(source.read_bytes(), LIB_DIR)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"book-{number}-") as tmp:
        converted = Path(tmp) / f"{source.stem}.ipynb"
        executed = Path(tmp) / f"{source.stem}.executed.ipynb"
        jupytext.write(nb, converted, fmt="ipynb")
        reads_log = Path(tmp) / "reads.txt"
        try:
            with _kernel_environment(reads_log):
                papermill.execute_notebook(
                    str(converted), str(executed), parameters=dict(parameters), kernel_name=KERNEL_NAME,
                    cwd=str(REPO_ROOT), progress_bar=False, log_output=False, request_save_on_cell_execute=False,
                )
        except PapermillExecutionError as exc:
            failed_dir = failed_dir_for(output.parent)
            failed_dir.mkdir(parents=True, exist_ok=True)
            kept = failed_dir / f"{source.stem}.ipynb"
            if executed.exists():
                shutil.copyfile(executed, kept)
            line = _source_line(text, exc.source)
            where = f"{source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source}"
            where += f" line {line}" if line else ""
            first = (exc.source.strip().splitlines() or [""])[0][:80]
            raise BuildError(
                f"chapter {number} failed in cell In [{exc.exec_count}] ({where}: {first!r}): "
                f"{exc.ename}: {exc.evalue}\n  the failed run is in {kept}; "
                f"{output.name} was left as it was"
            ) from None
        except Exception as exc:  # kernel died, timeout, ...
            raise BuildError(f"chapter {number} failed: {type(exc).__name__}: {exc}; "
                             f"{output.name} was left as it was") from None
        result = nbformat.read(executed, as_version=4)
        reads = files_read(reads_log)
    rel = source.relative_to(REPO_ROOT).as_posix() if source.is_relative_to(REPO_ROOT) else source.name
    companion = {"input_hash": digest, "source": rel, "parameters": dict(parameters), "reads": reads,
                 "inputs": parts, "executed": started.isoformat(timespec="seconds"),
                 "seconds": round(time.perf_counter() - t0, 1)}
    clean_executed(result, companion=companion)
    write_atomic(result, output)
