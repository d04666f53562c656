"""Protocol messages of the StateFun 2.x request-reply protocol (generated code).

Regenerate with ``python -m statefun_wsgi._proto.generate``.
"""
