"""The branded web console (``/console``) and the offline API docs (``/docs``).

Server-rendered HTML over the same service functions the API calls; every asset ships
in this package (or, for Swagger UI, in the ``fastapi-swagger`` package).
"""
