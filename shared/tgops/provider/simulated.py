"""A simulated provider for local runs: it syncs a few accounts, then pulls tasks and reports each one
done (or failed, as told) through the provider HTTP API, as a real provider would, with the seed's
shapes plus the lease_version of its pull. `tgops provider simulate` runs it beside `tgops dev`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)

BASE = "/api/provider/telegram"


@dataclass
class SimulatedProvider:
    api_url: str
    token: str
    accounts: int = 20
    pull_limit: int = 100
    fail_with: str | None = None  # report every task failed with this error (e.g. CHANNEL_PRIVATE)
    transport: httpx.AsyncBaseTransport | None = None
    reported: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "refused": 0})

    async def __aenter__(self) -> SimulatedProvider:
        self._client = httpx.AsyncClient(
            base_url=self.api_url.rstrip("/"),
            headers={"X-Provider-Token": self.token},
            timeout=30,
            transport=self.transport,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def sync_accounts(self) -> int:
        accounts = [
            {
                "provider_account_id": f"sim_{n}",
                "phone": f"+1555{n:07d}",
                "is_active": True,
                "meta": {"simulated": True},
            }
            for n in range(1, self.accounts + 1)
        ]
        response = await self._client.post(f"{BASE}/accounts/sync", json={"accounts": accounts})
        response.raise_for_status()
        return response.json()["synced"]

    async def work_once(self) -> int:
        """One pull, each task reported; how many tasks it pulled."""
        response = await self._client.post(f"{BASE}/tasks/pull", json={"limit": self.pull_limit})
        response.raise_for_status()
        tasks = response.json()["tasks"]
        if not tasks:
            return 0
        state = "failed" if self.fail_with else "done"
        reports = [
            {
                "task_id": task["task_id"],
                "state": state,
                "ok": state == "done",
                "error": self.fail_with,
                "lease_version": task["lease_version"],
                "provider_task_id": f"sim-{task['task_id']}",
                "data": {},
            }
            for task in tasks
        ]
        answer = await self._client.post(f"{BASE}/tasks/report", json={"reports": reports})
        answer.raise_for_status()
        for task, result in zip(tasks, answer.json()["results"]):
            outcome = state if result["ok"] else "refused"
            self.reported[outcome] += 1
            log.info(
                "task %s (%s %s, order %s): %s", task["task_id"], task["action"], task["link"],
                task.get("panel_order_id"), outcome if result["ok"] else f"refused: {result.get('error')}",
            )  # fmt: skip
        return len(tasks)

    async def run(self, stop: asyncio.Event, period_sec: float) -> None:
        await self.sync_accounts()
        while not stop.is_set():
            try:
                pulled = await self.work_once()
            except httpx.HTTPError as error:
                log.warning("the tgops API did not answer as expected: %s; trying again", error)
                pulled = 0
            if not pulled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period_sec)
