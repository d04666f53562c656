"""Protocol messages of the StateFun 2.x request-reply protocol (generated code).

The messages and what the runtime does with them are described in ``docs/protocol.md``.
Regenerate with ``python -m statefun_wsgi._proto.generate``.
"""
