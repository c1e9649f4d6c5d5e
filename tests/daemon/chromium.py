"""Headless Chromium driven over the DevTools protocol (CDP), for the live console's tests.

No browser automation library: the few commands the tests use (navigate, evaluate, screenshot,
a real mouse click, the window size) are plain CDP over a websocket, against Debian's
``/usr/bin/chromium``. Tests that need it are marked ``needs_chromium`` and skip, saying why,
where Chromium is not installed (``.ci/run`` installs it when it runs as root).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import pytest
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["CHROMIUM", "CdpError", "Chromium", "needs_chromium"]

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
)


# --- a headless Chromium over the DevTools protocol ---------------------------------------------


class CdpError(Exception):
    """A DevTools command failed, or the page's script threw."""


class Chromium:
    """Headless Chromium on a private profile; commands go to its first tab over CDP.

    ``exceptions`` collects uncaught page errors and ``console`` console/log errors, so a test
    can check that the page ran clean. ``describe`` is the JS expression whose value a timed-out
    ``wait_for`` reports (what the page showed).
    """

    describe = "document.body ? document.body.innerText.slice(0, 3000) : null"

    def __init__(self, log_path: Path, flags: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        self.flags = flags
        self.profile = Path(tempfile.mkdtemp(prefix="invsync-chromium-"))
        self.proc: asyncio.subprocess.Process | None = None
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.exceptions: list[str] = []
        self.console: list[str] = []

    async def __aenter__(self) -> Self:
        assert CHROMIUM is not None
        with open(self.log_path, "wb") as log:  # noqa: ASYNC230 (before the browser runs)
            self.proc = await asyncio.create_subprocess_exec(
                CHROMIUM,
                *FLAGS,
                *self.flags,
                f"--user-data-dir={self.profile}",
                "about:blank",
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
            )
        try:
            await self._attach()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _attach(self) -> None:
        # With port 0 Chromium picks a free port and writes it to the profile folder.
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not active.exists() or not active.read_text().strip():
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise CdpError(f"chromium exited {self.proc.returncode}: {self._log()}")
            if time.monotonic() > deadline:
                raise CdpError(f"chromium did not open its DevTools port: {self._log()}")
            await asyncio.sleep(0.05)
        port = int(active.read_text().split()[0])
        targets = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{port}/json/list")
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await connect(page["webSocketDebuggerUrl"], max_size=None)
        self.reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self._dispatch(json.loads(raw))
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(CdpError("the DevTools connection closed"))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "id" in msg:
            future = self.pending.pop(msg["id"], None)
            if future is None or future.done():
                return
            if "error" in msg:
                future.set_exception(CdpError(str(msg["error"])))
            else:
                future.set_result(msg.get("result", {}))
            return
        params = msg.get("params", {})
        match msg.get("method"):
            case "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                self.exceptions.append(
                    details.get("exception", {}).get("description") or details.get("text", "")
                )
            case "Runtime.consoleAPICalled" if params.get("type") == "error":
                self.console.append(" ".join(str(a.get("value", "")) for a in params["args"]))
            case "Log.entryAdded" if params["entry"].get("level") == "error":
                self.console.append(params["entry"].get("text", ""))
            case _:
                pass

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one DevTools command; its result."""
        assert self.ws is not None
        call_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        await self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, 30)

    async def open(self, url: str) -> None:
        """Navigate the tab to ``url``."""
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"cannot load {url}: {result['errorText']}")

    async def js(self, expression: str) -> Any:
        """The value of a JS expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 10) -> Any:
        """Poll a JS expression until it is truthy; its value. Fails naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(CdpError):  # e.g. while the page is still navigating
                value = await self.js(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                state = await self.js(self.describe)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}: {state}")
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """Click the element ``selector`` names as a user would: scrolled into view, then a
        real mouse press and release at its centre (the page sees trusted events)."""
        box = await self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise CdpError(f"nothing to click: {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    async def type_into(self, selector: str, text: str) -> None:
        """Focus ``selector`` and type ``text`` into it (real key input)."""
        await self.click(selector)
        await self.send("Input.insertText", text=text)

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Lay the page out as on a screen of ``width`` x ``height`` CSS pixels (a tablet:
        ``mobile=True``, touch and a device scale of 2)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )
        await self.send("Emulation.setTouchEmulationEnabled", enabled=mobile)

    async def screenshot(self, path: Path) -> None:
        """Save the tab as a PNG."""
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())
