"""Lambda entrypoint of the HTTP API: every route of `tgops.api`, served through Mangum.

Routers off the webhook's path are imported on their first request (tgops.api.routers.include_lazily).
What every webhook uses is imported here, at init: its SQS sender (boto3) among it.
"""

from mangum import Mangum

import tgops.messaging.sqs  # noqa: F401  every update is sent to SQS; load boto3 at init, not on the first update
from tgops.api.app import create_app, freeze_loaded_objects
from tgops.config import get_settings
from tgops.logs import configure_logging

configure_logging(get_settings(), service="http_api")
handler = Mangum(create_app(), lifespan="off")
freeze_loaded_objects()
