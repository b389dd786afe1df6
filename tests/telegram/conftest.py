from tests.fakes.mtproto_pool import *
