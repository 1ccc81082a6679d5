"""The twin clients: PushClient (threads) and AsyncPushClient (anyio) over the one engine."""
