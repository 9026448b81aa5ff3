"""The online service: app factory, routers, request parsing, strategies, presenter, metrics.

Never imports ``training``; the precomputed-list contract it reads is ``listcache``.
"""
