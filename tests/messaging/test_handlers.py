"""The topology declares nothing that does not exist: every queue and schedule has a registered handler,
except those whose capability is still being built, named here until they land."""

from __future__ import annotations

import inspect

from tgops import handlers
from tgops.messaging.topology import QUEUES, SCHEDULES

# Remove a name once its handler is registered in tgops.handlers (this test fails until you do).
STILL_MISSING_QUEUE_HANDLERS: set[str] = set()
STILL_MISSING_SCHEDULE_HANDLERS: set[str] = set()


def test_only_the_named_queues_have_no_handler_yet():
    missing = {spec.name for spec in QUEUES if spec.name not in handlers.QUEUE_HANDLERS}

    assert missing == STILL_MISSING_QUEUE_HANDLERS


def test_only_the_named_schedules_have_no_handler_yet():
    missing = {schedule.name for schedule in SCHEDULES if schedule.name not in handlers.SCHEDULE_HANDLERS}

    assert missing == STILL_MISSING_SCHEDULE_HANDLERS


def test_every_registration_names_a_topology_entry_and_an_async_function():
    assert set(handlers.QUEUE_HANDLERS) <= {spec.name for spec in QUEUES}
    assert set(handlers.SCHEDULE_HANDLERS) <= {schedule.name for schedule in SCHEDULES}
    for name in handlers.QUEUE_HANDLERS:
        assert inspect.iscoroutinefunction(handlers.queue_handler(name)), name
    for name in handlers.SCHEDULE_HANDLERS:
        assert inspect.iscoroutinefunction(handlers.schedule_handler(name)), name
