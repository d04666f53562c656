"""The official StateFun 3.x SDKs' built-in value types, as protobuf messages.

The official 3.x SDKs send ints, strings and the like under their own type names
(``io.statefun.types/int``, ...), each encoded as a one-field wrapper message. The
classes here encode them byte for byte the same way, and are known by those type
names: annotate a function's message with one to receive such a value, and pack
one to send it::

    from statefun_wsgi import IntWrapper, StringWrapper

    @functions.bind("example/counter")
    def count(context, message: StringWrapper):          # io.statefun.types/string
        print(message.value)
        context.pack_and_send("example/python-sdk-fn", "id-1", IntWrapper(value=42))   # io.statefun.types/int

    seen = context.state("seen").unpack(IntWrapper)        # a state holding one

=========================  ==================  ===========
type name                  class               ``value``
=========================  ==================  ===========
``io.statefun.types/bool``    ``BooleanWrapper``  bool
``io.statefun.types/int``     ``IntWrapper``      sfixed32
``io.statefun.types/long``    ``LongWrapper``     sfixed64
``io.statefun.types/float``   ``FloatWrapper``    float
``io.statefun.types/double``  ``DoubleWrapper``   double
``io.statefun.types/string``  ``StringWrapper``   str
=========================  ==================  ===========

Their type names do not end in the message's full name, so ``Any.Unpack`` and
``Any.Is`` do not recognise them: use an annotation, ``State.unpack``, or
``IntWrapper.FromString(any.value)``.
"""

from __future__ import annotations

from typing import Dict, Type

from google.protobuf.message import Message

from ._proto.builtin_types_pb2 import (
    BooleanWrapper,
    DoubleWrapper,
    FloatWrapper,
    IntWrapper,
    LongWrapper,
    StringWrapper,
)

__all__ = [
    "BUILTIN_TYPENAMES",
    "BooleanWrapper",
    "DoubleWrapper",
    "FloatWrapper",
    "IntWrapper",
    "LongWrapper",
    "StringWrapper",
]

#: class -> the type name it travels under.
BUILTIN_TYPENAMES: Dict[Type[Message], str] = {
    BooleanWrapper: "io.statefun.types/bool",
    IntWrapper: "io.statefun.types/int",
    LongWrapper: "io.statefun.types/long",
    FloatWrapper: "io.statefun.types/float",
    DoubleWrapper: "io.statefun.types/double",
    StringWrapper: "io.statefun.types/string",
}
