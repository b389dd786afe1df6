"""The account fleet: getting MTProto accounts in (import, login), keeping their sessions sealed, the
operator's commands, and the setup pipeline that brings each action account to a known profile."""
