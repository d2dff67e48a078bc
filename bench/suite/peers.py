"""Peer senders (placeholder until the peers land)."""


def run(peer, ctx, size, seconds):
    return {"ok": False, "problems": ["peer %s not implemented yet" % peer]}


def cleanup(ctx):
    pass
