"""Data assembly for the ``/dashboard`` page (the routes live in ``service/routers/dashboard.py``).

Three views, each a plain function or class over objects the app already has, so they can be
tested without a browser: :mod:`.model_view` (the serving model and the store's versions),
:mod:`.live` (rates and latency quantiles from the app's own Prometheus registry) and
:mod:`.tryit` (example ids, a user's training history, item attributes). The page itself is
three static files in ``static/``; no build step, nothing fetched from outside the service.
"""
