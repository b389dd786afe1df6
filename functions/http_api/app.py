"""Lambda entrypoint of the HTTP API: every route of `tgops.api`, served through Mangum."""

from mangum import Mangum

from tgops.api.app import create_app

handler = Mangum(create_app(), lifespan="off")
