"""Channels: senders that deliver notices to a provider over the network.

Each is an adapter beside the core, which imports none of them: ``http`` POSTs each notice as
signed JSON (``HttpSender``, and ``AsyncHttpSender`` for a concurrent dispatcher).
"""
