from tests.fakes.mtproto_pool import *  # noqa: F403
