"""The local runtime's scheduler: StateFun's delivery rules on one machine.

What it does as the real 2.2.2 runtime does (``RequestReplyFunction``, one parallel
task; ``docs/protocol.md``):

* a message to an idle address goes out at once, alone; messages that arrive while
  a batch is in flight (or retried) wait in the address's backlog, and when the
  batch completes the whole backlog goes out as the next batch, in arrival order;
* ``maxNumBatchRequests`` is a backpressure threshold, not a batch size: when an
  address's backlog reaches it, no further ingress message is taken in (by any
  address) until that address's call completes (nor while 1024 calls are in
  flight, ``statefun.async.max-per-task``); messages the functions send each
  other, and delayed messages, still join backlogs, so a batch can be larger than
  the threshold. 0 or less means no threshold. Messages given to :meth:`send`
  arrive back to back, before any reply. In process on a real clock, calls
  complete in the order they would side by side (a quick call started after a slow
  one completes first); on a virtual clock, in the order they started;
* every batch carries every registered state of the function type (absent ones
  empty); mutations of any other name fail; a mutation of an unknown type is
  ignored; an empty reply body means no effects;
* a reply's effects are applied all together, once: outgoing messages, delayed
  messages, egress records, then state mutations. Egress records must go to a
  declared egress, and a ``statefun.kafka.io/generic-egress`` (or Kinesis) takes
  only ``KafkaProducerRecord`` (``KinesisEgressRecord``) records;
* delayed messages are delivered after their delay; expired state reads as absent
  (``expireAfter`` with ``after-invoke`` or ``after-write``);
* retryable failures (connection errors, timeouts, 408, 409, 420, 429, 499, 5xx)
  are retried after a backoff of 10 ms, doubling, each sleep cut to what is left
  of the function's ``timeout`` (``BoundedExponentialBackoff``), so the last
  attempt starts at the deadline (with ``timeout: 1min``: 14 attempts, the last
  at 60 s). Each attempt is bounded by the transport's timeouts (see
  :mod:`.transport`). Anything else (another 4xx, a wrong content type, a 2xx
  body cut short or that does not parse, a refused reply) fails at once.

Given a 3.x ``module.yaml`` (or ``for_functions(..., protocol="3.x")``) it speaks the
3.x protocol as the 3.3.0 runtime does (``docs/protocol-3x.md``): ``TypedValue``
messages and states; after the start no state is known, so a function type's first
request carries none, its ``incomplete_invocation_context`` registers the states (type
and expiry as declared) and the same invocations go out again; every later request
carries every registered state (in the runtime's ``HashMap`` order). A MODIFY of another
type than the registered one, a declaration changing a registered type, a mutation of an
unknown type, a cancellation without a token or a token reused while its message is
pending fail the batch; a 3.x generic Kafka/Kinesis egress takes only its 3.x record
name. The ``async`` transport retries every failure, 4 ms doubling, until its call
timeout; ``okhttp`` follows the rules above.

When a call fails for good, the real job fails and Flink restarts it from its last
checkpoint: every address's state goes back to it, the ingress replays from it,
egress records written since may be written again, and the runtime sends the
failed batch again after the restart. The local runtime has no checkpoints: it
stops. :meth:`LocalRuntime.run_until_idle` (and :meth:`~LocalRuntime.advance`,
:meth:`~LocalRuntime.serve`) raise :class:`FunctionCallFailedError` with the address
and the reason, and keep raising it. Nothing of the failed batch is applied; what
earlier batches did (state, egress records, messages) stays visible through
:meth:`~LocalRuntime.state` and :meth:`~LocalRuntime.egress`, where a real job
would have rolled it back to the checkpoint; calls still in flight are abandoned.
A test of a failure asserts the error, and that the effects it expects were not
applied. :meth:`LocalRuntime.restart` then goes on as the restored job would from a
checkpoint taken just before the failed batch: it sends that batch again (on 3.x with
the states to declare again).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any as TypingAny
from typing import (Callable, Deque, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple, Type, TypeVar, Union,
                    overload)

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from .._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord
from .._proto import request_reply_v3_pb2 as v3
from .._proto.request_reply_pb2 import FromFunction, ToFunction
from .._protocol3 import ANY_TYPENAME, KAFKA_PRODUCER_RECORD_TYPENAME, KINESIS_EGRESS_RECORD_TYPENAME, typename_of
from ..builtin_types import BUILTIN_TYPENAMES
from ..context import Address, pack_any
from ..errors import ConfigurationError, UnexpectedMessageTypeError
from ..functions import StatefulFunctions, split_typename, type_name_of_url
from ..handler import RequestReplyHandler
from ..module_yaml import (
    default_protocol,
    ASYNC_TRANSPORT, KAFKA_EGRESS_KIND, KINESIS_EGRESS_KIND, FunctionSpec, ModuleSpec, StateSpec, format_duration,
    load_module_yaml,
)
from .records import EgressRecord, Envelope
from .transport import HttpTransport, InProcessTransport, Transport, TransportError

if TYPE_CHECKING:
    from ..v3.types import Type as OfficialType

__all__ = ["GENERIC_EGRESS_RECORDS", "FunctionCallFailedError", "LocalRuntime", "SystemClock", "VirtualClock"]

logger = logging.getLogger("statefun_wsgi.local")

M = TypeVar("M", bound=Message)

FIRST_BACKOFF = 0.010  # seconds, doubling, as the runtime's retry policy
#: statefun.async.max-per-task: with this many calls in flight, no ingress is taken in.
MAX_ASYNC_OPERATIONS_PER_TASK = 1024
_MODIFY = FromFunction.PersistedValueMutation.MODIFY
_DELETE = FromFunction.PersistedValueMutation.DELETE

#: The egress types whose records the runtime checks (statefun-flink-io-bundle's
#: GenericKafkaEgressSerializer, GenericKinesisEgressSerializer), and what they take.
GENERIC_EGRESS_RECORDS: Dict[str, Type[Message]] = {
    "statefun.kafka.io/generic-egress": KafkaProducerRecord,
    "statefun.kinesis.io/generic-egress": KinesisEgressRecord,
}
#: The 3.x generic egresses (GenericKafkaEgressSerializer of 3.3), and the exact type name
#: each takes.
GENERIC_EGRESS_TYPENAMES_3: Dict[str, Tuple[str, Type[Message]]] = {
    KAFKA_EGRESS_KIND: (KAFKA_PRODUCER_RECORD_TYPENAME, KafkaProducerRecord),
    KINESIS_EGRESS_KIND: (KINESIS_EGRESS_RECORD_TYPENAME, KinesisEgressRecord),
}
#: The async transport's first backoff (NettyRequest: 2 ms doubled per attempt made).
ASYNC_FIRST_BACKOFF = 0.002
_V3_MODIFY = v3.FromFunction.PersistedValueMutation.MODIFY
_V3_DELETE = v3.FromFunction.PersistedValueMutation.DELETE
_EXPIRE_MODES_3 = {v3.FromFunction.ExpirationSpec.AFTER_WRITE: "after-write",
                   v3.FromFunction.ExpirationSpec.AFTER_INVOKE: "after-invoke"}


class FunctionCallFailedError(RuntimeError):
    """A batch failed in a way the runtime does not retry (or retries ran out).

    ``address`` is the function address, ``reason`` what went wrong.
    """

    def __init__(self, address: Address, reason: str) -> None:
        super().__init__(f"{address.typename()}/{address.identity}: {reason}")
        self.address = address
        self.reason = reason


class SystemClock:
    """Real time (monotonic seconds)."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()


class VirtualClock:
    """Time that moves only when told to: for tests of delays, retries and expiry."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        self._now = max(self._now, when)


Clock = Union[SystemClock, VirtualClock]


@dataclass
class _StoredState:
    value: bytes
    touched: float  # when the expiry timer last restarted


@dataclass
class _Batch:
    address: Address
    spec: FunctionSpec
    envelopes: List[Envelope]
    request: bytes
    started: float  # the retries' deadline counts from here
    attempts: int = 0
    attempt_started: float = 0.0
    backoff: float = FIRST_BACKOFF  # the next sleep before a retry, doubling


@dataclass(order=True)
class _Delayed:
    due: float
    sequence: int
    envelope: Envelope = field(compare=False)
    token: str = field(default="", compare=False)  # 3.x: its cancellation token


@dataclass(frozen=True)
class _Registered:
    """A state a 3.x function declared (incomplete_invocation_context): its type is fixed."""

    spec: StateSpec
    typename: str


Listener = Callable[[str, Dict[str, object]], None]
_Result = Tuple[_Batch, Optional[bytes], Optional[TransportError]]


class LocalRuntime:
    """Delivers messages to functions the way StateFun does; see the module docstring.

    :param functions: the function specs by type (what ``module.yaml`` declares).
    :param transport: how batches reach the functions (``InProcessTransport`` or
        ``HttpTransport``).
    :param clock: ``VirtualClock()`` (tests; time moves with :meth:`advance`) or
        ``SystemClock()`` (real time).
    :param egresses: the egresses that may be written to: ids, or a mapping of id to
        egress type (module.yaml's ``meta.type``), which checks the records of the
        generic Kafka and Kinesis egresses; ``None`` accepts any.
    :param concurrency: batches in flight at once across addresses (HTTP transport).
    :param listener: called as ``listener(event, fields)`` for every message,
        delayed message, egress record and state change (for printing what flows).

    Build one with :meth:`for_functions` (in process) or :meth:`from_module_yaml`.
    """

    def __init__(
        self,
        functions: Dict[str, FunctionSpec],
        transport: Transport,
        *,
        clock: Optional[Clock] = None,
        egresses: Union[None, Iterable[str], Mapping[str, str]] = None,
        concurrency: int = 1,
        listener: Optional[Listener] = None,
        protocol: Optional[str] = None,
    ) -> None:
        self.functions = dict(functions)
        if protocol is None:
            protocol = "3.x" if any(spec.protocol == "3.x" for spec in self.functions.values()) else "2.x"
        if protocol not in ("2.x", "3.x"):
            raise ConfigurationError(f"protocol must be '2.x' or '3.x', not {protocol!r}")
        #: the protocol this runtime speaks, as a StateFun 2.2.2 or 3.3.0 runtime
        self.protocol = protocol
        # 3.x: the states each function type declared since the start (none at first)
        self._registered: Dict[str, Dict[str, _Registered]] = {}
        # 3.x: the types states had when restart() forgot them (what a checkpoint keeps)
        self._restored_types: Dict[str, Dict[str, str]] = {}
        self.transport = transport
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self._egress_types: Optional[Dict[str, Optional[str]]] = None
        if isinstance(egresses, Mapping):
            self._egress_types = dict(egresses)
        elif egresses is not None:
            self._egress_types = {egress_id: None for egress_id in egresses}
        self.listener = listener
        self._condition = threading.Condition()
        self._input: Deque[Envelope] = deque()  # ingress messages not taken in yet
        self._local: Deque[Envelope] = deque()  # messages the functions sent, being delivered
        self._backlogs: Dict[Address, List[Envelope]] = {}
        self._in_flight: Dict[Address, _Batch] = {}  # sent (or waiting for a retry), not completed
        self._blocked: Set[Address] = set()  # backlogs at their threshold: no ingress meanwhile
        # (when it completed, order, the call's result): calls done, not applied yet
        self._completed: List[Tuple[float, int, _Result]] = []
        self._turn_started = time.monotonic()
        self._retries: List[Tuple[float, int, _Batch]] = []
        self._delayed: List[_Delayed] = []
        self._sequence = itertools.count()
        self._states: Dict[Address, Dict[str, _StoredState]] = {}
        self._egress: Dict[str, List[EgressRecord]] = {}
        self._failure: Optional[FunctionCallFailedError] = None
        self._failed_batch: Optional[_Batch] = None  # the batch of self._failure, for restart()
        self._pool = ThreadPoolExecutor(concurrency, "statefun-local") if concurrency > 1 else None
        self.batches_sent = 0
        #: calls in flight (or waiting for a retry) at which the ingress waits, as the
        #: runtime's ``statefun.async.max-per-task``
        self.max_async_operations = MAX_ASYNC_OPERATIONS_PER_TASK

    # -- construction --------------------------------------------------------------

    @classmethod
    def for_functions(
        cls,
        functions: StatefulFunctions,
        *,
        module_yaml: Union[str, Path, ModuleSpec, None] = None,
        clock: Optional[Clock] = None,
        listener: Optional[Listener] = None,
        protocol: Optional[str] = None,
    ) -> LocalRuntime:
        """Run ``functions`` in this process, with a virtual clock by default.

        Registered states come from ``module_yaml`` when given, else from the
        states each function declares with ``bind(..., states=[...])``. The protocol is
        the module file's, else ``protocol`` (``"2.x"``, or ``"3.x"``: the functions declare
        their states at run time, as to a 3.3 runtime); by default ``"3.x"`` for a
        :mod:`statefun_wsgi.v3` registry (the official 3.3 API), else ``"2.x"``::

            runtime = LocalRuntime.for_functions(functions, protocol="3.x")
        """
        handler = RequestReplyHandler(functions)
        if module_yaml is not None:
            module = module_yaml if isinstance(module_yaml, ModuleSpec) else load_module_yaml(module_yaml)
            specs = dict(module.functions)
            egresses = {egress.id: egress.type for egress in module.egresses} or None
            if protocol is not None and protocol != module.protocol:
                raise ConfigurationError(f"protocol {protocol!r}, but {module.source} is a StateFun "
                                         f"{module.protocol} module.yaml")
            protocol = module.protocol
        else:
            if protocol is None:
                protocol = default_protocol(functions)
            v3_spec = protocol == "3.x"
            specs = {
                function.typename: FunctionSpec(
                    function.typename, "in-process://",
                    () if v3_spec else tuple(StateSpec(name) for name in function.states or ()),
                    protocol="3.x" if v3_spec else "2.x", transport=ASYNC_TRANSPORT if v3_spec else "",
                )
                for function in functions
            }
            egresses = None
        return cls(specs, InProcessTransport(handler), clock=clock, egresses=egresses, listener=listener,
                   protocol=protocol)

    @classmethod
    def from_module_yaml(
        cls,
        path: Union[str, Path, ModuleSpec],
        *,
        endpoint: Optional[str] = None,
        transport: Optional[Transport] = None,
        clock: Optional[Clock] = None,
        concurrency: int = 8,
        listener: Optional[Listener] = None,
    ) -> LocalRuntime:
        """Drive the functions a ``module.yaml`` declares, over HTTP by default.

        ``endpoint`` replaces every function's endpoint (e.g. a local gunicorn).
        """
        module = path if isinstance(path, ModuleSpec) else load_module_yaml(path)
        specs = dict(module.functions)
        if endpoint is not None:
            specs = {name: replace(spec, endpoint=endpoint) for name, spec in specs.items()}
        return cls(
            specs,
            transport if transport is not None else HttpTransport(),
            clock=clock if clock is not None else SystemClock(),
            egresses={egress.id: egress.type for egress in module.egresses} or None,
            concurrency=concurrency,
            listener=listener,
            protocol=module.protocol,
        )

    # -- the testing API -----------------------------------------------------------

    def send(
        self, typename: str, id: str, message: Union[Message, Any, object], *, caller: Optional[Address] = None,
        value_type: Optional[OfficialType] = None,
    ) -> None:
        """Deliver ``message`` (a protobuf message, or an ``Any``) to ``typename``/``id``,
        as an ingress does (no caller) unless ``caller`` is given. With ``value_type`` (a
        :mod:`statefun_wsgi.v3` type), ``message`` is a value of that type, as
        ``message_builder(..., value=, value_type=)`` takes it::

            runtime.send("example/counter", "a", "hello", value_type=StringType)
        """
        namespace, name = split_typename(typename)
        if not self._routes(typename):
            raise ConfigurationError(f"no function type {typename} here (known: {', '.join(sorted(self.functions))})")
        if value_type is not None:
            argument = Any(type_url=value_type.typename, value=value_type.serializer().serialize(message))
        elif isinstance(message, Any):
            argument = message
        elif isinstance(message, Message):
            argument = pack_any(message)
        else:
            raise TypeError(f"send a protobuf message or an Any, or give value_type for {type(message).__name__} "
                            "values (a statefun_wsgi.v3 type such as StringType)")
        with self._condition:
            envelope = Envelope(Address(namespace, name, id), argument, caller)
            self._input.append(envelope)
            self._emit("message", target=envelope.target, caller=envelope.caller, argument=envelope.argument)
            self._condition.notify_all()

    def run_until_idle(self, *, timeout: Optional[float] = 60.0, include_delayed: bool = False) -> None:
        """Process until no message is waiting or in flight.

        Delayed messages that are not due yet are left for :meth:`advance`, unless
        ``include_delayed`` (real clock only) waits for them too. Raises
        :class:`FunctionCallFailedError` on a failure, ``TimeoutError`` after
        ``timeout`` seconds of real time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._condition:
                self._raise_failure()
                work = self._dispatch_locked()
                idle = not (self._input or self._local or self._in_flight or self._completed or self._retries)
                if idle and (not include_delayed or not self._delayed):
                    return
                if idle and isinstance(self.clock, VirtualClock):  # include_delayed: jump to the next one
                    self.clock.advance_to(self._delayed[0].due)
                    continue
            if work:
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the local runtime was not idle after {timeout} s")
            self._wait(deadline)

    def serve(self, stop: threading.Event) -> None:
        """Keep delivering (new messages, delayed ones when due) until ``stop`` is set.

        Raises :class:`FunctionCallFailedError` when a batch fails for good.
        """
        while not stop.is_set():
            self.run_until_idle(timeout=None)
            self._wait(None)

    def advance(self, delta: timedelta) -> None:
        """Move the virtual clock forward by ``delta``, delivering delayed messages
        in order of their due time and expiring state on the way."""
        if not self.clock.virtual:
            raise ConfigurationError("advance() needs a VirtualClock; this runtime runs on real time")
        assert isinstance(self.clock, VirtualClock)
        target = self.clock.now() + delta.total_seconds()
        self.run_until_idle()
        while self._delayed and self._delayed[0].due <= target:
            self.clock.advance_to(self._delayed[0].due)
            self.run_until_idle()
        self.clock.advance_to(target)
        self.run_until_idle()

    @property
    def egress_ids(self) -> Optional[FrozenSet[str]]:
        """The egresses that may be written to (``None``: any)."""
        return None if self._egress_types is None else frozenset(self._egress_types)

    def egress(self, typename: str) -> List[EgressRecord]:
        """The records written to egress ``typename`` so far, in order."""
        with self._condition:
            return list(self._egress.get(typename, ()))

    @overload
    def state(self, typename: str, id: str, name: str) -> Optional[Any]: ...

    @overload
    def state(self, typename: str, id: str, name: str, message_type: Type[M]) -> Optional[M]: ...

    @overload
    def state(self, typename: str, id: str, name: str, message_type: OfficialType) -> TypingAny: ...

    def state(
        self, typename: str, id: str, name: str, message_type: Union[None, Type[M], OfficialType] = None
    ) -> TypingAny:
        """The stored value of state ``name`` of ``typename``/``id`` (``None`` when
        absent or expired), as an ``Any``, or unpacked into ``message_type`` (a built-in
        type such as ``IntWrapper`` matches its own type name, ``io.statefun.types/int``),
        or decoded by a :mod:`statefun_wsgi.v3` type (a ``ValueSpec``'s)::

            runtime.state("example/counter", "a", "seen", IntWrapper).value
            runtime.state("example/counter", "a", "seen", IntType)      # 3
        """
        if message_type is not None and not isinstance(message_type, type):
            stored_any = self.state(typename, id, name)
            if stored_any is None:
                return None
            if stored_any.type_url != message_type.typename:
                raise UnexpectedMessageTypeError(f"state {name!r} holds a {stored_any.type_url!r}, "
                                                 f"not a {message_type.typename!r}")
            return message_type.serializer().deserialize(stored_any.value)
        namespace, type_name = split_typename(typename)
        address = Address(namespace, type_name, id)
        registered_type = ANY_TYPENAME
        with self._condition:
            spec = self._spec(address)
            if self.protocol == "3.x":
                registered = self._registered.get(typename, {}).get(name)
                if registered is None:
                    raise KeyError(f"{typename} has no registered state {name!r} (a 3.x function declares its "
                                   "states when first called)")
                state_spec, registered_type = registered.spec, registered.typename
            else:
                found = next((s for s in spec.states if s.name == name), None)
                if found is None:
                    raise KeyError(f"{typename} has no registered state {name!r}")
                state_spec = found
            stored = self._live_state(address, state_spec)
        if stored is None:
            return None
        if registered_type == ANY_TYPENAME:
            value = Any.FromString(stored.value)
        else:  # a typed 3.x state: its value is the message itself
            value = Any(type_url=registered_type, value=stored.value)
            if message_type is not None:
                if typename_of(message_type()) != registered_type:
                    raise UnexpectedMessageTypeError(f"state {name!r} is registered as {registered_type!r}")
                return message_type.FromString(stored.value)
        if message_type is None:
            return value
        builtin = BUILTIN_TYPENAMES.get(message_type)  # io.statefun.types/int, ...: its own type name
        if (value.type_url != builtin if builtin is not None
                else type_name_of_url(value.type_url) != message_type.DESCRIPTOR.full_name):
            raise UnexpectedMessageTypeError(f"state {name!r} holds a {value.type_url!r}")
        return message_type.FromString(value.value)

    def restart(self) -> None:
        """As the job restoring from a checkpoint taken now, when idle: state values, delayed
        messages and egress records stay; on 3.x the registered states are forgotten, so each
        function type's next request carries none and its function declares them again (with
        the types they had: another type fails, as the runtime's RemoteValueTypeMismatchException)::

            runtime.run_until_idle()
            runtime.restart()
            runtime.send("example/greeter", "alice", GreetRequest(name="alice"))  # declares, then runs

        After a :class:`FunctionCallFailedError`, as the real job restoring from a checkpoint
        taken just before the failed batch (none of it was applied): the failure is cleared and
        the failed batch's messages are delivered again, then the address's backlog. It needs
        the failed call to be the only one in flight::

            with pytest.raises(FunctionCallFailedError):
                runtime.run_until_idle()
            runtime.restart()
            runtime.run_until_idle()  # the failed messages again (states declared again on 3.x)
        """
        with self._condition:
            failed = self._failed_batch if self._failure is not None else None
            if failed is None:
                self._raise_failure()
            busy = [address for address in self._in_flight if failed is None or address != failed.address]
            if self._input or self._local or busy or self._completed or self._retries:
                raise ConfigurationError("restart() needs an idle runtime (after a failure: the failed call the "
                                         "only one in flight): call run_until_idle() first")
            for function_type, states in self._registered.items():
                restored = self._restored_types.setdefault(function_type, {})
                restored.update({name: entry.typename for name, entry in states.items()})
            self._registered.clear()
            if failed is not None:
                self._failure = self._failed_batch = None
                del self._in_flight[failed.address]
                self._blocked.discard(failed.address)
                self._local.extend(failed.envelopes + self._backlogs.pop(failed.address, []))
                self._deliver_local()
                self._condition.notify_all()

    @property
    def pending_delayed(self) -> int:
        """How many delayed messages are waiting for their time."""
        with self._condition:
            return len(self._delayed)

    def close(self) -> None:
        """Stop the worker threads and close the transport's connections (HTTP transport)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> LocalRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scheduling (all under self._condition) -------------------------------------

    def _routes(self, typename: str) -> Optional[FunctionSpec]:
        """The spec for ``typename``: its own, or (3.x) its namespace's ``ns/*`` endpoint's."""
        spec = self.functions.get(typename)
        if spec is None:
            spec = self.functions.get(f"{typename.rpartition('/')[0]}/*")
        return None if spec is None else spec.for_type(typename)

    def _spec(self, address: Address) -> FunctionSpec:
        typename = f"{address.namespace}/{address.type}"
        spec = self._routes(typename)
        if spec is None:
            known = ", ".join(sorted(self.functions)) or "none"
            raise KeyError(f"no function type {typename} here (known: {known})")
        return spec

    def _deliver(self, envelope: Envelope) -> None:
        """A message reaches its address (RequestReplyFunction.onRequest)."""
        address = envelope.target
        if address not in self._in_flight:  # idle: it goes out at once, alone
            self._start(self._new_batch(address, [envelope]))
            return
        backlog = self._backlogs.setdefault(address, [])
        backlog.append(envelope)
        threshold = self._spec(address).max_batch_size
        if 0 < threshold <= len(backlog):
            self._blocked.add(address)

    def _release_due(self) -> bool:
        now = self.clock.now()
        released = False
        while self._delayed and self._delayed[0].due <= now:
            envelope = heapq.heappop(self._delayed).envelope
            self._emit("message", target=envelope.target, caller=envelope.caller, argument=envelope.argument)
            self._local.append(envelope)
            released = True
        return released

    def _deliver_local(self) -> None:
        while self._local and self._failure is None:
            self._deliver(self._local.popleft())

    def _dispatch_locked(self) -> bool:
        """One turn of the operator's loop; True if anything happened.

        As the runtime's task thread: retries whose backoff is over go out again;
        the calls completed by now are applied one by one, each followed by the
        delivery of the messages it sent; due delayed messages are delivered; then
        ingress messages are taken in one by one while no address is at its
        backpressure threshold.
        """
        progressed = False
        self._turn_started = time.monotonic()
        now = self.clock.now()
        while self._retries and self._retries[0][0] <= now:
            _, _, batch = heapq.heappop(self._retries)
            self._start(batch)
            progressed = True
        if self._completed:
            # The calls completed by now, one by one (calls started meanwhile, e.g. a next
            # batch that completed in process already, wait for the next turn).
            completed, self._completed = sorted(self._completed), []
            for _, _, (batch, reply, error) in completed:
                self._finish(batch, reply, error)
                self._deliver_local()
                if self._failure is not None:
                    return True
            progressed = True
        if self._release_due():
            self._deliver_local()
            progressed = True
        while self._takes_input():
            self._deliver(self._input.popleft())
            progressed = True
        return progressed

    def _takes_input(self) -> bool:
        """An ingress message is waiting, and no backpressure holds it (ThresholdBackPressureValve)."""
        return bool(self._input) and not self._blocked and self._failure is None and (
            len(self._in_flight) < self.max_async_operations)

    def _new_batch(self, address: Address, envelopes: List[Envelope]) -> _Batch:
        spec = self._spec(address)
        if self.protocol == "3.x":
            return self._new_batch_3(address, spec, envelopes)
        request = ToFunction()
        batch = request.invocation
        batch.target.namespace, batch.target.type, batch.target.id = address
        for state_spec in spec.states:
            stored = self._live_state(address, state_spec)
            if stored is not None and state_spec.expire_mode == "after-invoke":
                stored.touched = self.clock.now()
            batch.state.add(state_name=state_spec.name, state_value=b"" if stored is None else stored.value)
        for envelope in envelopes:
            invocation = batch.invocations.add(argument=envelope.argument)
            if envelope.caller is not None:
                caller = invocation.caller
                caller.namespace, caller.type, caller.id = envelope.caller
        return _Batch(address, spec, envelopes, request.SerializeToString(), self.clock.now())

    def _new_batch_3(self, address: Address, spec: FunctionSpec, envelopes: List[Envelope]) -> _Batch:
        """A 3.x request: every state the function type registered so far (one without a value
        as its name alone), and TypedValue arguments."""
        request = v3.ToFunction()
        batch = request.invocation
        batch.target.namespace, batch.target.type, batch.target.id = address
        registry = self._registered.get(spec.typename, {})
        for name in _java_hash_map_order(list(registry)):
            registered = registry[name]
            stored = self._live_state(address, registered.spec)
            state = batch.state.add(state_name=name)
            if stored is not None:
                if registered.spec.expire_mode == "after-invoke":
                    stored.touched = self.clock.now()
                state.state_value.typename = registered.typename
                state.state_value.has_value = True
                state.state_value.value = stored.value
        for envelope in envelopes:
            invocation = batch.invocations.add()
            invocation.argument.typename = envelope.argument.type_url
            invocation.argument.has_value = True
            invocation.argument.value = envelope.argument.value
            if envelope.caller is not None:
                caller = invocation.caller
                caller.namespace, caller.type, caller.id = envelope.caller
        return _Batch(address, spec, envelopes, request.SerializeToString(), self.clock.now())

    def _live_state(self, address: Address, state_spec: StateSpec) -> Optional[_StoredState]:
        states = self._states.get(address)
        stored = states.get(state_spec.name) if states else None
        if stored is not None and state_spec.expire_after is not None:
            if self.clock.now() - stored.touched >= state_spec.expire_after.total_seconds():
                del states[state_spec.name]  # type: ignore[union-attr]
                self._emit("state", address=address, name=state_spec.name, value=None, expired=True)
                return None
        return stored

    def _start(self, batch: _Batch) -> None:
        self._in_flight[batch.address] = batch
        batch.attempts += 1
        batch.attempt_started = self.clock.now()
        self.batches_sent += 1
        if self._pool is None:
            # In process, calls run one after the other. On a real clock they complete in
            # the order they would have, had they run side by side from this turn on (a
            # quick call started after a slow one completes first); on a virtual clock,
            # where calls take no time, in the order they started.
            began = time.monotonic()
            result = self._call(batch)
            completed = 0.0 if self.clock.virtual else self._turn_started + time.monotonic() - began
            self._completed.append((completed, next(self._sequence), result))
        else:
            future = self._pool.submit(self._call, batch)
            future.add_done_callback(self._on_done)

    def _call(self, batch: _Batch) -> _Result:
        try:
            return batch, self.transport(batch.spec, batch.request), None
        except TransportError as error:
            return batch, None, error
        except Exception as error:  # a transport bug must not hang the runtime
            return batch, None, TransportError(f"{type(error).__name__}: {error}", retryable=False)

    def _on_done(self, future: Future) -> None:  # type: ignore[type-arg]
        with self._condition:
            self._completed.append((time.monotonic(), next(self._sequence), future.result()))
            self._condition.notify_all()

    def _finish(self, batch: _Batch, reply: Optional[bytes], error: Optional[TransportError]) -> None:
        if error is not None:
            if not error.retryable:
                self._fail(batch, error.reason)
                return
            # BoundedExponentialBackoff: sleep the next backoff, or what is left until the
            # deadline if that is less; nothing left is the end (in whole nanoseconds, as Java).
            ended = self.clock.now()
            if error.elapsed is not None:  # timed out: the runtime gave up on the attempt then
                gave_up = batch.attempt_started + error.elapsed
                # a virtual clock moves to then; a call in process may have run on after it
                ended = max(ended, gave_up) if self.clock.virtual else min(ended, gave_up)
            timeout = batch.spec.timeout
            remaining_ns = round(timeout.total_seconds() * 1e9) - round((ended - batch.started) * 1e9)
            if batch.spec.transport == ASYNC_TRANSPORT:
                # NettyRequest: 2 ms doubled per attempt made, cut to the budget; with 1 ms or less
                # left (now, or when the backoff timer fires), no further attempt.
                sleep_ns = min(remaining_ns, round(ASYNC_FIRST_BACKOFF * 1e9) << batch.attempts)
                if remaining_ns - sleep_ns <= 1_000_000:
                    sleep_ns = 0
            else:
                sleep_ns = min(remaining_ns, round(batch.backoff * 1e9))
                batch.backoff *= 2
            if sleep_ns > 0:
                logger.warning("retrying %s in %.0f ms: %s", batch.address.text(), sleep_ns / 1e6, error.reason)
                heapq.heappush(self._retries, (ended + sleep_ns / 1e9, next(self._sequence), batch))
                return
            self._fail(
                batch,
                f"maximal request time has elapsed: {batch.attempts} attempts over "
                f"{ended - batch.started:.2f} s (timeout {format_duration(timeout)}); the last: {error.reason}",
            )
            return
        assert reply is not None
        try:
            if self.protocol == "3.x":
                self._apply_3(batch, reply)
            else:
                self._apply(batch, reply)
        except _ReplyRejected as rejected:
            self._fail(batch, str(rejected))

    def _fail(self, batch: _Batch, reason: str) -> None:
        # Keep the batch unapplied and the address blocked: as a failed job, nothing moves.
        self._failure = FunctionCallFailedError(batch.address, reason)
        self._failed_batch = batch
        logger.error("%s", self._failure)
        self._condition.notify_all()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _apply(self, batch: _Batch, reply: bytes) -> None:
        response = FromFunction()
        try:
            response.ParseFromString(reply)
        except DecodeError as exc:
            raise _ReplyRejected(f"the reply is not a FromFunction: {exc}") from None
        result = response.invocation_result
        address = batch.address
        # Validate everything first: the reply is applied all together or not at all.
        for message in result.outgoing_messages:
            self._check_target(message.target)
        for delayed in result.delayed_invocations:
            self._check_target(delayed.target)
            if delayed.delay_in_ms < 0:
                raise _ReplyRejected(f"a delayed message has a negative delay ({delayed.delay_in_ms} ms)")
        for egress in result.outgoing_egresses:
            self._check_egress(f"{egress.egress_namespace}/{egress.egress_type}", egress.argument)
        registered = {state.name: state for state in batch.spec.states}
        for mutation in result.state_mutations:
            if mutation.state_name not in registered:
                raise _ReplyRejected(
                    f"the reply changes state {mutation.state_name!r}, which module.yaml does not register"
                )

        now = self.clock.now()
        for message in result.outgoing_messages:
            target = message.target
            envelope = Envelope(Address(target.namespace, target.type, target.id), message.argument, address)
            self._local.append(envelope)
            self._emit("message", target=envelope.target, caller=address, argument=envelope.argument)
        for delayed in result.delayed_invocations:
            target = delayed.target
            envelope = Envelope(Address(target.namespace, target.type, target.id), delayed.argument, address)
            heapq.heappush(self._delayed, _Delayed(now + delayed.delay_in_ms / 1000, next(self._sequence), envelope))
            self._emit("delayed", target=envelope.target, caller=address, argument=envelope.argument,
                       delay_ms=delayed.delay_in_ms)
        for egress in result.outgoing_egresses:
            record = EgressRecord(f"{egress.egress_namespace}/{egress.egress_type}", egress.argument)
            self._egress.setdefault(record.egress, []).append(record)
            self._emit("egress", record=record)
        if result.state_mutations:
            states = self._states.setdefault(address, {})
            for mutation in result.state_mutations:
                if mutation.mutation_type == _MODIFY:
                    states[mutation.state_name] = _StoredState(mutation.state_value, now)
                    self._emit("state", address=address, name=mutation.state_name,
                               value=Any.FromString(mutation.state_value))
                elif mutation.mutation_type == _DELETE:
                    states.pop(mutation.state_name, None)
                    self._emit("state", address=address, name=mutation.state_name, value=None)
                # any other mutation type: the runtime ignores it (UNRECOGNIZED)
        self._release(address)

    def _release(self, address: Address) -> None:
        """The address's call is complete: its backlog, all of it, is the next batch. The
        messages of the reply just applied are delivered after (to this address too: they queue)."""
        self._blocked.discard(address)
        backlog = self._backlogs.pop(address, None)
        if backlog:
            self._start(self._new_batch(address, backlog))
        else:
            del self._in_flight[address]

    def _apply_3(self, batch: _Batch, reply: bytes) -> None:
        """A 3.x reply, as RequestReplyFunction of 3.3 handles it."""
        response = v3.FromFunction()
        try:
            response.ParseFromString(reply)
        except DecodeError as exc:
            raise _ReplyRejected(f"the reply is not a FromFunction: {exc}") from None
        address = batch.address
        typename = batch.spec.typename
        registered = self._registered.setdefault(typename, {})
        if response.HasField("incomplete_invocation_context"):
            declared: Dict[str, _Registered] = {}
            for missing in response.incomplete_invocation_context.missing_values:
                name, state_type = missing.state_name, missing.type_typename
                known: Optional[_Registered] = registered.get(name) or declared.get(name)
                if known is not None and known.typename != state_type:
                    raise _ReplyRejected(f"state {name!r} is registered with type {known.typename!r}, and the "
                                         f"reply declares it again with type {state_type!r}")
                if known is not None:
                    continue
                restored_type = self._restored_types.get(typename, {}).get(name, state_type)
                if restored_type != state_type:  # the checkpoint's state has its type
                    raise _ReplyRejected(
                        f"state {name!r} was restored with type {restored_type!r}, and the reply declares it with "
                        f"type {state_type!r} (RemoteValueTypeMismatchException)")
                expiration = missing.expiration_spec
                mode = _EXPIRE_MODES_3.get(expiration.mode)
                if mode is not None and expiration.expire_after_millis <= 0:
                    raise _ReplyRejected(f"state {name!r} expires after {expiration.expire_after_millis} ms: "
                                         "Flink refuses a TTL that is not positive")
                spec = StateSpec(name) if mode is None else StateSpec(
                    name, timedelta(milliseconds=expiration.expire_after_millis), mode)
                declared[name] = _Registered(spec, state_type)
            registered.update(declared)
            for name, new in declared.items():
                self._emit("register", address=address, name=name, type=new.typename,
                           expire=None if new.spec.expire_after is None else format_duration(new.spec.expire_after))
            # The same invocations again, now with the registered states.
            again = self._new_batch(address, batch.envelopes)
            self._in_flight[address] = again
            self._start(again)
            return
        result = response.invocation_result
        for message in result.outgoing_messages:
            self._check_target(message.target)
        pending = {delayed.token for delayed in self._delayed if delayed.token}
        for delayed in result.delayed_invocations:
            token = delayed.cancellation_token
            if delayed.is_cancellation_request:
                if not token:
                    raise _ReplyRejected("a delayed message cancellation has no cancellation token (\"Can not "
                                         "handle a cancellation request without a cancellation token\")")
                pending.discard(token)
                continue
            self._check_target(delayed.target)
            if delayed.delay_in_ms < 0:
                raise _ReplyRejected(f"a delayed message has a negative delay ({delayed.delay_in_ms} ms)")
            if token:
                if token in pending:
                    raise _ReplyRejected(f"the cancellation token {token!r} names a delayed message still pending")
                pending.add(token)
        for egress in result.outgoing_egresses:
            self._check_egress(f"{egress.egress_namespace}/{egress.egress_type}",
                               Any(type_url=egress.argument.typename, value=egress.argument.value))
        for mutation in result.state_mutations:
            if mutation.mutation_type not in (_V3_MODIFY, _V3_DELETE):  # 2.x ignores it, 3.3 fails the job
                raise _ReplyRejected(f"state {mutation.state_name!r}: a mutation of unknown type "
                                     f"{mutation.mutation_type} (\"Received an UNRECOGNIZED PersistedValueMutation "
                                     "type\")")
            entry = registered.get(mutation.state_name)
            if entry is None:
                raise _ReplyRejected(f"the reply changes state {mutation.state_name!r}, which the function has "
                                     "not declared (incomplete_invocation_context)")
            if mutation.mutation_type == _V3_MODIFY and mutation.state_value.typename != entry.typename:
                raise _ReplyRejected(
                    f"state {mutation.state_name!r} is registered with type {entry.typename!r}, and the reply "
                    f"writes a value of type {mutation.state_value.typename!r}"
                )

        now = self.clock.now()
        for message in result.outgoing_messages:
            target = message.target
            argument = Any(type_url=message.argument.typename, value=message.argument.value)
            envelope = Envelope(Address(target.namespace, target.type, target.id), argument, address)
            self._local.append(envelope)
            self._emit("message", target=envelope.target, caller=address, argument=envelope.argument)
        for delayed in result.delayed_invocations:
            if delayed.is_cancellation_request:
                kept = [entry for entry in self._delayed if entry.token != delayed.cancellation_token]
                if len(kept) != len(self._delayed):
                    self._delayed = kept
                    heapq.heapify(self._delayed)
                    self._emit("cancelled", token=delayed.cancellation_token)
                continue
            target = delayed.target
            argument = Any(type_url=delayed.argument.typename, value=delayed.argument.value)
            envelope = Envelope(Address(target.namespace, target.type, target.id), argument, address)
            heapq.heappush(self._delayed, _Delayed(now + delayed.delay_in_ms / 1000, next(self._sequence), envelope,
                                                   delayed.cancellation_token))
            self._emit("delayed", target=envelope.target, caller=address, argument=envelope.argument,
                       delay_ms=delayed.delay_in_ms)
        for egress in result.outgoing_egresses:
            argument = Any(type_url=egress.argument.typename, value=egress.argument.value)
            record = EgressRecord(f"{egress.egress_namespace}/{egress.egress_type}", argument)
            self._egress.setdefault(record.egress, []).append(record)
            self._emit("egress", record=record)
        if result.state_mutations:
            states = self._states.setdefault(address, {})
            for mutation in result.state_mutations:
                name = mutation.state_name
                if mutation.mutation_type == _V3_MODIFY:
                    states[name] = _StoredState(mutation.state_value.value, now)
                    value = (Any.FromString(mutation.state_value.value) if registered[name].typename == ANY_TYPENAME
                             else Any(type_url=registered[name].typename, value=mutation.state_value.value))
                    self._emit("state", address=address, name=name, value=value)
                elif mutation.mutation_type == _V3_DELETE:
                    states.pop(name, None)
                    self._emit("state", address=address, name=name, value=None)
        self._release(address)

    def _check_egress(self, egress_id: str, argument: Any) -> None:
        if self._egress_types is None:
            return
        if egress_id not in self._egress_types:
            raise _ReplyRejected(f"egress {egress_id} is not declared in module.yaml")
        egress_type = self._egress_types[egress_id]
        generic = GENERIC_EGRESS_TYPENAMES_3.get(egress_type or "")
        if generic is not None:
            expected_name, record_class = generic
            if argument.type_url != expected_name:
                raise _ReplyRejected(f"egress {egress_id} is a {egress_type}: it takes only {expected_name!r} "
                                     f"records, not {argument.type_url!r}")
            try:
                record_class.FromString(argument.value)
            except DecodeError as exc:
                raise _ReplyRejected(f"egress {egress_id}: the record is not a valid {expected_name}: {exc}") from None
            return
        record_type = GENERIC_EGRESS_RECORDS.get(egress_type or "")
        if record_type is None:
            return
        expected = record_type.DESCRIPTOR.full_name
        if type_name_of_url(argument.type_url) != expected:
            raise _ReplyRejected(
                f"egress {egress_id} is a {egress_type}: it takes only {expected} records, not {argument.type_url!r}"
            )
        try:
            record_type.FromString(argument.value)
        except DecodeError as exc:
            raise _ReplyRejected(f"egress {egress_id}: the record is not a valid {expected}: {exc}") from None

    def _check_target(self, target: object) -> None:
        typename = f"{target.namespace}/{target.type}"  # type: ignore[attr-defined]
        if not self._routes(typename):
            raise _ReplyRejected(f"the reply sends a message to {typename}, which no module.yaml function declares")

    def _wait(self, deadline: Optional[float]) -> None:
        """Sleep (real clock) or jump (virtual clock) to the next thing that can happen."""
        with self._condition:
            if self._completed or self._takes_input() or self._local or self._failure:
                return
            next_times = [entry[0] for entry in self._retries[:1]] + [d.due for d in self._delayed[:1]]
            if self.clock.virtual:
                # A batch waiting for its retry stays in _in_flight (its address is blocked),
                # so only wait for calls when some batch is not merely waiting for a retry.
                if len(self._in_flight) > len(self._retries):
                    self._condition.wait(0.05)
                elif self._retries:  # the runtime spends this time retrying
                    assert isinstance(self.clock, VirtualClock)
                    self.clock.advance_to(min(next_times))  # a delayed message due meanwhile first
                return
            timeout = 0.5
            if next_times:
                timeout = min(timeout, max(0.0, min(next_times) - self.clock.now()))
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            self._condition.wait(timeout)

    def _emit(self, event: str, **fields: object) -> None:
        if self.listener is not None:
            try:
                self.listener(event, fields)
            except Exception:
                logger.exception("the local runtime's listener failed")


def _java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as an unsigned 32-bit int."""
    data = text.encode("utf-16-be")
    value = 0
    for index in range(0, len(data), 2):
        value = (31 * value + (data[index] << 8 | data[index + 1])) & 0xFFFFFFFF
    return value


def _java_hash_map_order(names: List[str]) -> List[str]:
    """``names`` (in insertion order) in the order a ``java.util.HashMap`` iterates them: the
    3.3 runtime keeps a function's registered states in one (PersistedRemoteFunctionValues)
    and sends them in that order. Buckets by the spread hash in a table of 16 doubled at a
    0.75 load; insertion order within a bucket (trees of 8+ colliding names are not modelled)."""
    capacity = 16
    while len(names) > capacity * 3 // 4:
        capacity *= 2

    def bucket(name: str) -> int:
        value = _java_string_hash(name)
        return (value ^ (value >> 16)) & (capacity - 1)

    return [name for _, _, name in sorted((bucket(name), index, name) for index, name in enumerate(names))]


class _ReplyRejected(Exception):
    """A reply the runtime would refuse (and fail the job on)."""


