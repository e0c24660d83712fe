"""Store failures through HTTP (issue 12, items 5-8): a full disk, a read-only or removed model
folder, a model file that cannot be read. Each is answered with its documented status, by a
training child as by the server, and nothing else breaks.

The failures are real where this machine allows it: a tiny tmpfs filled up is a full disk; a
read-only bind mount (as root, whom ``chmod`` does not stop) or ``chmod`` (otherwise) a read-only
folder; a folder renamed away a removed one. Where a test needs a mount and cannot make one, it
skips. Errors no test can cause for real (EIO) are injected in-process, as
``tests/api/test_hostile.py`` does for a full disk.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from model_store import new_model_id
from tests.conftest import train
from tests.live_server import LiveServer, children

GOOD = {
    "features": [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]],
    "labels": ["a", "a", "b", "b"],
}


def mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"needs a mount (mount {' '.join(args)}: {r.stderr.strip()})")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """``folder`` made unwritable, with its content; yields the error writes will get."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield os.strerror(errno.EACCES)
        finally:
            folder.chmod(0o755)
        return
    mount("--bind", str(folder), str(folder))
    try:
        mount("-o", "remount,bind,ro", str(folder))
        yield os.strerror(errno.EROFS)
    finally:
        unmount(folder)


@contextmanager
def small_disk(folder: Path) -> Iterator[Callable[[], None]]:
    """``folder`` on a 1 MiB tmpfs; yields ``fill()``, which leaves it no free byte (the file it
    writes is not a model's: the store ignores it)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))

    def fill() -> None:
        with open(folder / "filler", "wb", buffering=0) as fh:
            with pytest.raises(OSError) as info:
                while True:
                    fh.write(b"\0" * 65536)
            assert info.value.errno == errno.ENOSPC

    try:
        yield fill
    finally:
        unmount(folder)


@contextmanager
def disk_full(folder: Path, fill: Callable[[], None]) -> Iterator[tuple[int, list[str]]]:
    fill()
    try:
        yield 507, [os.strerror(errno.ENOSPC), "nothing was kept"]
    finally:
        (folder / "filler").unlink()


@contextmanager
def folder_read_only(folder: Path) -> Iterator[tuple[int, list[str]]]:
    with read_only(folder) as error:
        yield 503, [error, "nothing was kept"]


@contextmanager
def folder_removed(folder: Path, *, replaced_by_a_file: bool) -> Iterator[tuple[int, list[str]]]:
    aside = folder.with_name("moved-away")
    folder.rename(aside)
    if replaced_by_a_file:
        folder.write_text("not a folder")
    try:
        error = errno.ENOTDIR if replaced_by_a_file else errno.ENOENT
        yield 503, ["model folder", str(folder), os.strerror(error)]
    finally:
        if replaced_by_a_file:
            folder.unlink()
        aside.rename(folder)


FAULTS = ["disk full", "read-only", "folder removed", "folder replaced by a file"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_store_error_in_the_training_child_comes_back_as_itself(tmp_path, fault):
    """Issue 12, item 5: a write refused in the training child was a 503 "killed, most likely for
    lack of memory" (the error could not be unpickled) and tore the pool down. It is the store's
    own answer (507 disk full; 503 naming the filesystem's error, or the folder), the same child
    processes train the next model, and nothing is left behind."""
    folder = tmp_path / "models"
    with ExitStack() as stack:
        fill = stack.enter_context(small_disk(folder)) if fault == "disk full" else None
        # every body goes to the training child
        server = stack.enter_context(LiveServer(folder, env={"TRAIN_INLINE_MAX_BYTES": "0"}))
        c = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
        assert server.proc is not None
        assert c.post("/train", json=GOOD).status_code == 201  # the pool is up
        pool = children(server.proc.pid)
        assert pool

        if fault == "disk full":
            assert fill is not None
            failure = disk_full(folder, fill)
        elif fault == "read-only":
            failure = folder_read_only(folder)
        else:
            failure = folder_removed(folder, replaced_by_a_file=fault.endswith("file"))
        with failure as (status, words):
            r = c.post("/train", json=GOOD)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert all(word in detail for word in words), detail
        assert "killed" not in detail
        assert children(server.proc.pid) == pool  # the pool was not torn down

        assert c.post("/train", json=GOOD).status_code == 201
        assert children(server.proc.pid) == pool
        assert c.get("/models").json()["total"] == 2
        besides = {"filler", "audit.log", "names"}  # the audit log and the names' folder
        assert sorted(p.name for p in folder.iterdir() if p.name not in besides) == sorted(
            f"{m['id']}.json" for m in c.get("/models").json()["items"]
        )
        log = server.log()
        assert "child process died" not in log and "Traceback" not in log, log[-3000:]


def test_delete_on_a_read_only_store_is_a_503_and_keeps_the_model(client, settings):
    """Issue 12, item 6: ``DELETE /models/{id}`` on a read-only folder was a 500
    (``OSError: [Errno 30]`` from the store). A 503 naming the error; the model stays."""
    model_id = train(client, GOOD["features"], GOOD["labels"])["id"]
    with read_only(settings.model_store_dir) as error:
        r = client.delete(f"/models/{model_id}")
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert model_id in detail and error in detail and "could not be deleted" in detail
        assert client.get(f"/models/{model_id}").status_code == 200
        p = client.post("/predict", json={"model_id": model_id, "features": [[1.0, 2.0]]})
        assert p.status_code == 200
    assert client.delete(f"/models/{model_id}").status_code == 204
    assert client.get(f"/models/{model_id}").status_code == 404


def inject(monkeypatch: pytest.MonkeyPatch, path: Path, calls: str, code: int) -> None:
    """``os.<call>`` for each of ``calls`` (``open``, ``stat``, ``fstat``) fails with ``code``
    for ``path`` alone: an error a test cannot cause for real (EIO; EACCES as root)."""
    target = str(path)
    real_open, real_close = os.open, os.close
    descriptors: set[int] = set()  # open on ``path``

    def refuse() -> OSError:
        return OSError(code, os.strerror(code), target)

    def open_(file: str, flags: int, *args: int, **kwargs: int) -> int:
        if "open" in calls and os.fspath(file) == target:
            raise refuse()
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file) == target:
            descriptors.add(fd)
        return fd

    def close(fd: int) -> None:
        descriptors.discard(fd)
        real_close(fd)

    def failing(call: str) -> Callable[..., object]:
        real = getattr(os, call)

        def fail(arg: object, *args: object, **kwargs: object) -> object:
            if (arg in descriptors) if call == "fstat" else (arg == target):
                raise refuse()
            return real(arg, *args, **kwargs)

        return fail

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "close", close)
    for call in {"stat", "fstat"} & set(calls.split()):
        monkeypatch.setattr(os, call, failing(call))


UNREADABLE = [
    "a directory",
    "no permission",
    "I/O error on open",
    "I/O error on stat and open",  # the inode cannot be read
    "I/O error on fstat",
]


@pytest.mark.parametrize("how", UNREADABLE)
def test_an_unreadable_model_file_is_a_409_on_every_route(client, settings, monkeypatch, how):
    """Issue 12, item 7: a model file that cannot be read (a directory in its place, EACCES, EIO)
    was a 500 on ``/predict`` and ``/v2/models/{id}/ready`` and a 409 on ``GET``. Every route that
    names the model now answers the same 409 for it; the other models, the listing and
    ``/health`` are unaffected. ``DELETE`` removes the file, or, for what it may not remove (a
    directory), answers the same 409."""
    good = train(client, GOOD["features"], GOOD["labels"])["id"]
    folder = settings.model_store_dir
    if how == "a directory":
        bad = new_model_id()
        (folder / f"{bad}.json").mkdir()
    else:
        bad = train(client, GOOD["features"], GOOD["labels"])["id"]
        path = folder / f"{bad}.json"
        if how == "no permission" and os.geteuid() != 0:
            path.chmod(0)
        else:
            calls = how.removeprefix("I/O error on ") if "I/O" in how else "open"
            inject(monkeypatch, path, calls, errno.EIO if "I/O" in how else errno.EACCES)
    row = {"features": [[1.0, 2.0]]}
    infer = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    csv = {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}}
    routes = [
        ("POST", "/predict", {"json": {"model_id": bad, **row}}),
        ("POST", "/predict", {"json": {"model_id": "latest", **row}}),  # the newest
        ("POST", f"/predict?model_id={bad}", csv),
        ("GET", f"/models/{bad}", {}),
        ("GET", f"/v2/models/{bad}", {}),
        ("GET", f"/v2/models/{bad}/ready", {}),
        ("GET", f"/v2/models/{bad}/versions/1/ready", {}),
        ("POST", f"/v2/models/{bad}/infer", {"json": infer}),
    ]
    for method, url, kwargs in routes:
        r = client.request(method, url, **kwargs)
        assert r.status_code == 409, (url, r.text)
        message = r.json()["error" if url.startswith("/v2") else "detail"]
        assert f"model '{bad}' is corrupt on disk: cannot be read" in message, (url, message)

    listing = client.get("/models").json()
    assert [m["id"] for m in listing["items"]] == [good] and listing["unreadable"] == [bad]
    assert client.get("/health").json() == {"status": "ok", "models": 2}
    assert client.post("/predict", json={"model_id": good, **row}).status_code == 200

    r = client.delete(f"/models/{bad}")
    monkeypatch.undo()
    if how == "a directory":
        assert r.status_code == 409, r.text
        assert "not a regular file" in r.json()["detail"] and (folder / f"{bad}.json").is_dir()
    else:
        assert r.status_code == 204, r.text
        assert client.get(f"/models/{bad}").status_code == 404


@pytest.mark.parametrize("replaced_by_a_file", [False, True], ids=["removed", "a file"])
def test_per_model_routes_answer_503_naming_the_folder_when_it_is_gone(
    client, settings, replaced_by_a_file
):
    """Issue 12, item 8: with the model folder removed, ``/health`` and ``/models`` answered 503
    but the routes that name a model 404 "no model with id", which says the model was deleted.
    They answer the folder's 503 too, for a model known a moment ago (and cached) or not."""
    model_id = train(client, GOOD["features"], GOOD["labels"])["id"]
    row = {"features": [[1.0, 2.0]]}
    assert client.post("/predict", json={"model_id": model_id, **row}).status_code == 200
    infer = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    csv = {"content": b"a,b\n1,2\n", "headers": {"content-type": "text/csv"}}
    folder = settings.model_store_dir
    with folder_removed(folder, replaced_by_a_file=replaced_by_a_file) as (status, words):
        for ref in (model_id, new_model_id(), "latest"):
            routes = [
                ("POST", "/predict", {"json": {"model_id": ref, **row}}),
                ("POST", f"/predict?model_id={ref}", csv),
                ("GET", f"/models/{ref}", {}),
                ("DELETE", f"/models/{ref}", {}),
                ("GET", f"/v2/models/{ref}", {}),
                ("GET", f"/v2/models/{ref}/ready", {}),
                ("POST", f"/v2/models/{ref}/infer", {"json": infer}),
            ]
            for method, url, kwargs in routes:
                r = client.request(method, url, **kwargs)
                assert r.status_code == status, (method, url, r.text)
                message = r.json()["error" if url.startswith("/v2") else "detail"]
                assert all(word in message for word in words), (method, url, message)
        assert client.get("/health").status_code == 503
    assert client.post("/predict", json={"model_id": model_id, **row}).status_code == 200
    assert client.get("/models").json()["total"] == 1
