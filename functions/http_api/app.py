"""Lambda entrypoint of the HTTP API: every route of `tgops.api`, served through Mangum."""

from mangum import Mangum

from tgops.api.app import create_app, freeze_loaded_objects
from tgops.config import get_settings
from tgops.logs import configure_logging

configure_logging(get_settings(), service="http_api")
handler = Mangum(create_app(), lifespan="off")
freeze_loaded_objects()
