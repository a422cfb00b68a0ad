"""The HTTP API served by ``assetd run`` (docs/api.md).

Importing this package imports no web framework: :mod:`assetd.api.runtime` is what the daemon
holds; :mod:`assetd.api.server` (uvicorn, FastAPI, prometheus_client) is imported on the API's
own thread after READY.
"""
