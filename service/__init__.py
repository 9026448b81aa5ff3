"""The online service: FastAPI app factory, routers, pipeline, metrics. Never imports ``training``."""
