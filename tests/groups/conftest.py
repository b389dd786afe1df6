"""The fake Bot API server and settings of tests/broadcast serve the group tests too."""

from tests.broadcast.conftest import bot_api, bot_settings, runtime  # noqa: F401 -- fixtures
