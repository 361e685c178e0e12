"""Serving: the TF Serving client, the multi-hop graph builder and the local stand-in server."""
